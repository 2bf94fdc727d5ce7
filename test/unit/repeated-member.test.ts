import { describe, expect, it } from 'vitest';
import { repeatedMember } from '../../src/http/repeated-member.ts';

describe('the repeated member of a JSON text', () => {
  it.each([
    ['{"a":1,"b":2,"a":3}', 'a'],
    ['{"a":1,"a":1}', 'a'],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['[{"x":[{"y":1,"y":1}]}]', 'y'],
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{ "a" : 1 ,\n "a" : 2 }', 'a'],
  ])('is found in %s', (text, name) => {
    expect(repeatedMember(text)).toBe(name);
  });

  it.each([
    '{"a":1,"b":{"a":2}}',
    '[{"a":1},{"a":2}]',
    '{"a":"a","b":["a","a"]}',
    '{"a":"{\\"a\\":1,","b":"\\\\","c":"\\"a\\""}',
    '{}',
    '"a"',
    '7',
  ])('is none in %s', (text) => {
    expect(repeatedMember(text)).toBeNull();
  });

  it('reads deep nesting without a call stack', () => {
    const deep = `${'['.repeat(100_000)}{"a":1,"a":2}${']'.repeat(100_000)}`;
    expect(repeatedMember(deep)).toBe('a');
  });
});
