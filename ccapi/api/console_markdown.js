"use strict";
// A small Markdown renderer for the console's replies. It builds DOM nodes and never parses HTML: text from the
// model only ever becomes Text nodes, so markup in a reply is shown as it was written, not run. Links are made for
// http(s) and mailto addresses only; images become links (the page's CSP would not load them anyway).
// Covers what Claude writes: headings, paragraphs, emphasis, code spans and fenced blocks, lists (nested), quotes,
// tables, rules and links. An unfinished stream renders as far as it goes.
const Markdown = (() => {
  const FENCE = /^\s*(```+|~~~+)\s*([\w+#.-]*)/;
  const HEADING = /^(#{1,6})\s+(.*)$/;  // closing #s come off below: a regex for them backtracks badly
  const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^\s*>/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const TABLE_RULE = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
  // Where a span may start: a code span, strong, strikethrough or emphasis opens here (its close is looked for after
  // it), a link or image (whole), a bare or <> URL, a line break.
  const TOKEN = new RegExp([
    /(`+)/.source,
    // a label may hold one level of [brackets] and a target one level of (parentheses), as Wikipedia's addresses
    // do; neither may hold an unbalanced one, so every try stops at the next ( or [ and a reply full of "[a](" is
    // scanned in linear time (an open-ended target made that quadratic: seconds for 100 KB)
    /!?\[((?:[^[\]\n]|\[[^[\]\n]*\])*)\]\(\s*<?((?:[^()\s<>]|\([^()\s<>]*\))*)>?(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?\s*\)/.source,
    /(\*\*|__|~~)(?=\S)/.source,
    /(?<![\w*])([*_])(?=[^\s*_])/.source,
    /<?(https?:\/\/(?:[^\s<>()]|\([^\s<>()]*\))*(?:[^\s<>().,;:!?'"*_]|\([^\s<>()]*\)))>?/.source,
    /\n/.source,
  ].join("|"), "g");
  // Quotes and lists nest this deep at most; deeper ones are text. Each level re-reads the lines below it, and a
  // reply of ">>>>…" or of ever more indented items overflowed the stack or took seconds.
  const MAX_DEPTH = 16;
  const TAGS = { "**": "strong", "__": "strong", "~~": "del", "*": "em", "_": "em" };
  const closers = new Map();  // opening delimiter → the regex for what closes it

  // Where the span an opening delimiter starts closes: the first close from `from` on, or null.
  function closing(open, text, from) {
    if (!closers.has(open)) {
      const mark = open.replace(/./g, "\\$&");
      const pattern = open[0] === "`" ? `(?<!\`)${mark}(?!\`)`  // the same run of backticks, no longer
        : open.length === 2 ? `(?<=\\S)${mark}`  // **, __ or ~~ after a non-space
        : `(?<=[^\\s\\\\])${mark}(?![\\w*])`;  // * or _ after neither a space nor \, before no word character or *
      closers.set(open, new RegExp(pattern, "g"));
    }
    const close = closers.get(open);
    close.lastIndex = from;
    return close.exec(text);
  }

  function node(tag, text) {
    const made = document.createElement(tag);
    if (text !== undefined) made.textContent = text;
    return made;
  }

  const indentOf = (line) => line.match(/^\s*/)[0].replace(/\t/g, "    ").length;
  const isTable = (lines, i) => lines[i].includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]);
  const startsBlock = (lines, i) => FENCE.test(lines[i]) || HEADING.test(lines[i]) || RULE.test(lines[i]) ||
    QUOTE.test(lines[i]) || ITEM.test(lines[i]) || isTable(lines, i);

  function render(text) {
    const root = document.createDocumentFragment();
    blocks(String(text ?? "").replace(/\r\n?/g, "\n").split("\n"), root);
    return root;
  }

  function blocks(lines, parent, depth = 0) {
    const nests = depth < MAX_DEPTH;
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let match;
      if (!line.trim()) {
        i++;
      } else if ((match = line.match(FENCE))) {
        const body = [];
        for (i++; i < lines.length && !lines[i].trimStart().startsWith(match[1]); i++) body.push(lines[i]);
        i++;  // the closing fence, if the stream got that far
        const pre = node("pre"), code = node("code", body.join("\n"));
        if (match[2]) code.dataset.lang = match[2];
        pre.append(code);
        parent.append(pre);
      } else if ((match = line.match(HEADING))) {
        const heading = node("h" + match[1].length);
        inline(match[2].trimEnd().replace(/(?<!#)#+$/, "").trimEnd(), heading);
        parent.append(heading);
        i++;
      } else if (RULE.test(line)) {
        parent.append(node("hr"));
        i++;
      } else if (nests && QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        const quote = node("blockquote");
        blocks(body, quote, depth + 1);
        parent.append(quote);
      } else if (nests && ITEM.test(line)) {
        i = list(lines, i, parent, depth);
      } else if (isTable(lines, i)) {
        i = table(lines, i, parent);
      } else {
        const body = [line];
        for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines, i); i++) body.push(lines[i]);
        const paragraph = node("p");
        inline(body.join("\n"), paragraph);
        parent.append(paragraph);
      }
    }
  }

  function list(lines, i, parent, depth) {
    const first = lines[i].match(ITEM);
    const indent = indentOf(first[1]), ordered = /\d/.test(first[2]);
    const made = node(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) made.start = parseInt(first[2], 10);
    while (i < lines.length) {
      const item = lines[i].match(ITEM);
      if (!item || indentOf(item[1]) !== indent || /\d/.test(item[2]) !== ordered) break;
      const body = [item[3]], inner = indent + item[2].length + 1;
      for (i++; i < lines.length; i++) {
        const next = lines[i];
        if (!next.trim()) {
          if (i + 1 < lines.length && lines[i + 1].trim() && indentOf(lines[i + 1]) > indent) body.push("");
          else break;
        } else if (indentOf(next) > indent) {
          body.push(next.slice(Math.min(indentOf(next), inner)));
        } else if (!startsBlock(lines, i)) {
          body.push(next);  // a lazy continuation of the item's text
        } else {
          break;
        }
      }
      const entry = node("li");
      if (body.length === 1) inline(body[0], entry);
      else blocks(body, entry, depth + 1);
      made.append(entry);
      while (i < lines.length && !lines[i].trim() && i + 1 < lines.length && ITEM.test(lines[i + 1]) &&
             indentOf(lines[i + 1].match(ITEM)[1]) === indent) i++;  // a loose list goes on after a blank line
    }
    parent.append(made);
    return i;
  }

  function cells(line) {
    return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());
  }

  function table(lines, i, parent) {
    const made = node("table"), head = node("thead"), body = node("tbody"), names = node("tr");
    for (const cell of cells(lines[i])) {
      const th = node("th");
      inline(cell, th);
      names.append(th);
    }
    head.append(names);
    for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) {
      const row = node("tr");
      for (const cell of cells(lines[i])) {
        const td = node("td");
        inline(cell, td);
        row.append(td);
      }
      body.append(row);
    }
    made.append(head, body);
    const scroller = node("div");
    scroller.className = "table";
    scroller.append(made);
    parent.append(scroller);
    return i;
  }

  // Left to right: a span that opens takes the first close after it; one that finds none is plain text. A delimiter
  // with no close after one place has none after any later place either, so it is not looked for again: a paragraph
  // of unmatched * or _ renders in time linear in its length. Inside a link's label (linked) a link or URL is text.
  function inline(text, parent, linked = false) {
    const token = new RegExp(TOKEN), unclosed = new Set();
    let last = 0, match;
    while ((match = token.exec(text))) {
      const [whole, run, label, href, pair, single, url] = match, open = run || pair || single;
      let end = match.index + whole.length, made;
      if (open) {
        const found = unclosed.has(open) ? null : closing(open, text, end + 1);  // content: one character at least
        if (!found) {  // plain text: a run of backticks as a whole, a * or _ one character at a time
          unclosed.add(open);
          token.lastIndex = run ? end : match.index + 1;
          continue;
        }
        const content = text.slice(end, found.index);
        made = run ? node("code", content.replace(/^ (.+) $/, "$1")) : wrapped(TAGS[open], content, linked);
        end = found.index + open.length;
      } else if (linked && (href !== undefined || url !== undefined)) {
        continue;
      } else if (href !== undefined) {
        made = link(href, label, whole.startsWith("!"));
      } else {
        made = url !== undefined ? link(url, url, false) : node("br");
      }
      if (match.index > last) parent.append(text.slice(last, match.index));  // a string appends as a Text node
      parent.append(made);
      last = token.lastIndex = end;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function wrapped(tag, text, linked) {
    const made = node(tag);
    inline(text, made, linked);
    return made;
  }

  function link(href, label, image) {
    const text = image ? `[image: ${label || href}]` : label || href;
    if (!/^(https?:\/\/|mailto:)/i.test(href)) return document.createTextNode(text);
    const anchor = node("a");
    anchor.href = href;
    anchor.rel = "noopener noreferrer";
    anchor.target = "_blank";
    if (image) anchor.textContent = text;
    else inline(text, anchor, true);
    return anchor;
  }

  return { render };
})();
