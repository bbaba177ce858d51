// Tables in the style of kubectl: a bold header, columns padded, no box, so that they
// read well on a terminal and still grep and cut well in a pipe.
import Table from "cli-table3";
import type { Colors } from "./colors.js";
import { clip } from "./sanitize.js";

const NO_BORDER = {
  top: "", "top-mid": "", "top-left": "", "top-right": "",
  bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
  left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  ",
};

/** A table of the given rows; every cell is made terminal-safe and clipped. */
export function renderTable(head: string[], rows: string[][], colors: Colors, maxCell = 60): string {
  const table = new Table({
    head: head.map((h) => colors.bold(h)),
    chars: NO_BORDER,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
  });
  for (const row of rows) table.push(row.map((cell) => clip(cell, maxCell)));
  // cli-table3 pads the last column too; trailing blanks only get in the way.
  return `${table.toString().split("\n").map((line) => line.trimEnd()).join("\n")}\n`;
}

/** "key: value" lines, keys padded to one width. */
export function renderFields(fields: [string, string][], colors: Colors): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${colors.dim(`${k}:`.padEnd(width + 1))} ${v}`).join("\n") + "\n";
}
