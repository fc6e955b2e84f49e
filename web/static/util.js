// Small helpers shared by the page's modules: ids, text, time, visibility.

/** Compare decimal `_id` strings numerically (they may exceed 2^53). */
export function compareIds(a, b) {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A message or event `_id`: a decimal string (or a safe non-negative integer). */
export function isId(value) {
  return typeof value === "string" ? /^\d{1,19}$/.test(value) : Number.isSafeInteger(value) && value >= 0;
}

/** The larger of two ids, either of which may be null. */
export function maxId(a, b) {
  if (a === null || a === undefined) return b ?? null;
  if (b === null || b === undefined) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/**
 * The server sends message text as allow-list-sanitized HTML. We still never insert it
 * as HTML: it is parsed in an inert <template> (no scripts run, no resources load, no
 * handlers fire) and only its text is kept, with <br>/<p>/<li> turned into line breaks.
 * So "a &lt; b" reads "a < b" and markup shows as its plain text.
 */
export function htmlToText(html) {
  const tpl = document.createElement("template");
  tpl.innerHTML = String(html ?? "");
  const blocks = new Set(["P", "DIV", "LI", "UL", "OL", "BLOCKQUOTE", "PRE", "H1", "H2", "H3", "H4", "H5", "H6", "TR"]);
  const skipped = new Set(["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT", "IFRAME", "OBJECT", "TITLE"]);
  let out = "";
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        out += child.data;
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        if (child.tagName === "BR") {
          out += "\n";
          continue;
        }
        if (skipped.has(child.tagName)) continue; // never shown by a browser either
        const block = blocks.has(child.tagName);
        if (block && out && !out.endsWith("\n")) out += "\n";
        walk(child);
        if (block && !out.endsWith("\n")) out += "\n";
      }
    }
  };
  walk(tpl.content);
  return out.replace(/\n{3,}/g, "\n\n").trim();
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { short: "", full: "" };
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const short = sameDay ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  return { short, full: date.toLocaleString() };
}

export function show(el, visible) {
  el.hidden = !visible;
}

export function setError(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
