// pg's own conversion of a parameter to the text it sends (pg exports `./lib/*`; @types/pg does not declare it).
declare module 'pg/lib/utils.js' {
  export function prepareValue(value: unknown): string | Buffer | null;
}
