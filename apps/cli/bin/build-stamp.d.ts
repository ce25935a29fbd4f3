export function sourceHash(root: string): string;
export function stampOf(hash: string, main: string): string;
export function isUpToDate(paths: { readonly main: string; readonly stampFile: string; readonly hash: string }): boolean;
