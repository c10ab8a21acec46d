/**
 * One CSV cell (RFC 4180) that no spreadsheet evaluates. A cell starting with =, +, -, @,
 * a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets
 * ("CSV injection"), so, as OWASP advises, it gets a leading single quote, unless it is a
 * plain number such as -12.5 or -0.055040 (amounts must stay numbers). Then the usual
 * quoting: a cell with a quote, comma or line break is wrapped in quotes, quotes doubled.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?\d+(\.\d+)?$/;

export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? "" : String(value);
  if (FORMULA_START.test(text) && !PLAIN_NUMBER.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV line (no line ending) of these cells. */
export function csvLine(values: readonly unknown[]): string {
  return values.map(csvCell).join(",");
}
