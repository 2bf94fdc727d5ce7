/**
 * The first member name an object of a JSON text repeats, at any depth, or
 * null. JSON.parse keeps the last of a repeated member and lossless-json skips
 * a repeat of an equal value, so neither can tell; which one a reader takes
 * is a guess, and a body that leaves it to one is refused.
 *
 * `text` is valid JSON (body-parser has parsed it): strings and structure are
 * all that need reading. A loop with a stack, not recursion: nesting costs no
 * call stack. Names are compared as decoded (`"a"` and `"\u0061"` repeat).
 */
export function repeatedMember(text: string): string | null {
  // One entry per open container: the names an object has seen, null for an array.
  const open: (Set<string> | null)[] = [];
  let expectingName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') {
      open.push(new Set());
      expectingName = true;
    } else if (c === '[') {
      open.push(null);
      expectingName = false;
    } else if (c === '}' || c === ']') {
      open.pop();
      expectingName = false;
    } else if (c === ',') {
      expectingName = open.at(-1) instanceof Set;
    } else if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      const names = open.at(-1);
      if (expectingName && names instanceof Set) {
        const name = JSON.parse(text.slice(start, i + 1)) as string;
        if (names.has(name)) return name;
        names.add(name);
        expectingName = false;
      }
    }
  }
  return null;
}
