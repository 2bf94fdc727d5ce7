/** Renders rows as an aligned KEY / VALUE table, values as JSON, one per line. */
export function keyValueTable(rows: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(3, ...rows.map(([key]) => key.length));
  const lines = [` ${'KEY'.padEnd(width)}  VALUE`];
  for (const [key, value] of rows) {
    lines.push(` ${key.padEnd(width)}  ${JSON.stringify(value)}`);
  }
  return lines.join('\n');
}

export function header(title: string, fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(...fields.map(([key]) => key.length));
  return [
    ` ${title}`,
    ` ${'―'.repeat(title.length)}`,
    '',
    ...fields.map(([key, value]) => ` ${key.padEnd(width)}  ${value}`),
    '',
  ].join('\n');
}

/** Renders rows under headings, columns aligned. */
export function table(
  headings: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const widths = headings.map((heading, i) =>
    Math.max(heading.length, ...rows.map((row) => String(row[i] ?? '').length)),
  );
  const line = (cells: readonly (string | number)[]) =>
    ` ${cells.map((cell, i) => String(cell).padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(headings), ...rows.map(line)].join('\n');
}
