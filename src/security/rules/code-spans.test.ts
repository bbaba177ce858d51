// The fence scanner finds exactly what the expression it replaces finds: fixed cases and
// generated texts made of what fences are made of (backticks, tildes, blanks, newlines,
// carriage returns, info words).
import { describe, expect, it } from "vitest";
import { FENCE_PATTERN, INLINE_PATTERN, replaceFences, replaceInlineCode } from "./code-spans.js";

const mark = (info: string, body: string) => `<${JSON.stringify(info)}|${JSON.stringify(body)}>`;
const byPattern = (text: string) => text.replace(FENCE_PATTERN, (_, _run: string, info: string, body: string) => mark(info, body));

describe("the fence scanner", () => {
  it("replaces the fences the expression finds, and nothing else", () => {
    const cases = [
      "```sh\nrm -rf /\n```\n",
      "text\n```\na\n```\nmore\n~~~py\nb\n~~~",
      "  ```bash\nx\n  ```  \n",
      "    ```\nfour blanks: no fence\n```\n",
      "````\nlong run\n```\nstill in\n````\n",
      "```\nunclosed to the end",
      "```js `tick in info`\nnot a fence\n```\n",
      "~~~ `tick`\nnot a fence either\n~~~\n",
      "```\n\n```",
      "```\r\nwindows\r\n```\r\n",
      "a ```inline``` b",
      "```",
      "```\n```\n```\n",
      "x\r```\ncarriage return starts a line\n```",
      "~~~\n```\nmixed\n~~~~ \nafter",
      "```\nclose with extra ```~~ \n",
      "```\n```x\nnot a close\n```\n",
      "",
    ];
    for (const text of cases) expect(replaceFences(text, mark), JSON.stringify(text)).toBe(byPattern(text));
  });

  it("agrees with the expression on generated texts", () => {
    const pieces = ["```", "`", "~~~", "~", " ", "\t", "\n", "\r", "sh", "x y", "````", "\n```\n", "  "];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let k = 0; k < 20_000; k += 1) {
      let text = "";
      for (let j = 0, n = 1 + random(14); j < n; j += 1) text += pieces[random(pieces.length)];
      expect(replaceFences(text, mark), JSON.stringify(text)).toBe(byPattern(text));
    }
  });
});

describe("the inline code scanner", () => {
  const spans = (text: string) => text.replace(INLINE_PATTERN, (_, _run: string, body: string) => `<${body}>`);
  it("finds the spans the expression finds", () => {
    for (const text of ["run `npm test` now", "``a`b``", "````x``", "```x```", "`a` and `b`", "`` ` ``", "`unclosed", "``x`", "`x``", "a ``` b ` c", "`" + "y".repeat(4001) + "`", "`" + "y".repeat(4000) + "`", "", "``"]) {
      expect(replaceInlineCode(text, (body) => `<${body}>`), JSON.stringify(text)).toBe(spans(text));
    }
  });

  it("agrees with the expression on generated texts", () => {
    const pieces = ["`", "``", "```", "````", "a", " ", "b c", "\n", "x".repeat(1500)];
    let seed = 11;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let k = 0; k < 20_000; k += 1) {
      let text = "";
      for (let j = 0, n = 1 + random(12); j < n; j += 1) text += pieces[random(pieces.length)];
      expect(replaceInlineCode(text, (body) => `<${body}>`), JSON.stringify(text.slice(0, 200))).toBe(spans(text));
    }
  });
});
