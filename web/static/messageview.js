// One message of the open room as the page shows it: author, time, text, the message it
// replies to, its reactions, whether it was edited or deleted, who has seen it, and the
// actions the user may take on it (docs/ROOM_STATE.md).
//
// A message is an object as history and the live events give it; changes (edits,
// deletions, reactions) are merged into it with `applyChange` and the same <li> is filled
// again with `fillMessage`. Buttons carry `data-action` (and `data-emoji`): the page
// listens once on the list, not on every message. Everything a user wrote is set as
// textContent.

import { formatTime, htmlToText, isId } from "./util.js";

/** The reactions offered on every message (any single emoji is accepted by the API). */
export const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/** How long an emoji button keeps its label list of who reacted. */
const NAMES_IN_TITLE = 20;

function reactionsOf(raw) {
  if (!Array.isArray(raw)) return [];
  return raw
    .filter((r) => r && typeof r.emoji === "string" && r.emoji && Number.isSafeInteger(r.count) && r.count > 0)
    .map((r) => ({ emoji: r.emoji, count: r.count, users: Array.isArray(r.users) ? r.users.map(String) : [] }));
}

function replyOf(raw) {
  if (!raw || typeof raw !== "object" || !isId(raw._id)) return null;
  return {
    _id: String(raw._id),
    owner: String(raw.owner ?? ""),
    userName: String(raw.userName ?? ""),
    excerpt: String(raw.excerpt ?? ""),
  };
}

/** A message from the API or an event, with the fields this page reads normalized. */
export function normalizeMessage(raw) {
  const msg = { ...raw, _id: String(raw._id) };
  msg.deleted = raw.deleted === true;
  msg.edited = typeof raw.edited === "string" && raw.edited ? raw.edited : null;
  msg.replyTo = replyOf(raw.replyTo);
  msg.reactions = reactionsOf(raw.reactions);
  if (msg.deleted) {
    msg.text = "";
    msg.reactions = [];
    msg.replyTo = null;
  }
  return msg;
}

/**
 * A change of a message: `{text, edited}` (edited), `{deleted: true}` or `{reactions}`.
 * Returns the message as it is after the change; a deleted message takes no other change.
 */
export function applyChange(msg, change) {
  if (msg.deleted) return msg;
  if (change.deleted) return { ...msg, deleted: true, text: "", edited: null, reactions: [], replyTo: null };
  const next = { ...msg };
  if (typeof change.text === "string") next.text = change.text;
  if (typeof change.edited === "string" && change.edited) next.edited = change.edited;
  if (change.reactions !== undefined) next.reactions = reactionsOf(change.reactions);
  return next;
}

/** Merge two changes of one message into one that has the effect of both, in order. */
export function mergeChanges(first, second) {
  if (first.deleted || second.deleted) return { deleted: true };
  return { ...first, ...second };
}

/** The reactions after the user toggled `emoji` (shown at once; the event confirms it). */
export function toggledReactions(reactions, emoji, selfId) {
  const out = reactions.map((r) => ({ ...r, users: [...r.users] }));
  const found = out.find((r) => r.emoji === emoji);
  if (found && found.users.includes(selfId)) {
    found.users = found.users.filter((u) => u !== selfId);
    found.count -= 1;
    return out.filter((r) => r.count > 0);
  }
  if (found) {
    found.users.push(selfId);
    found.count += 1;
  } else {
    out.push({ emoji, count: 1, users: [selfId] });
  }
  return out;
}

/** Whether the user is among those who reacted with `emoji`. */
export function reactedWith(msg, emoji, selfId) {
  const found = msg.reactions.find((r) => r.emoji === emoji);
  return Boolean(found && found.users.includes(selfId));
}

/** A new <li> for a message, from the page's <template>; fill it with `fillMessage`. */
export function createMessageItem(template) {
  const li = template.content.firstElementChild.cloneNode(true);
  const picker = li.querySelector(".reaction-picker");
  for (const emoji of EMOJI) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reaction-option";
    button.dataset.action = "react";
    button.dataset.emoji = emoji;
    button.dataset.testid = "reaction-option";
    button.setAttribute("aria-label", `React with ${emoji}`);
    button.textContent = emoji;
    picker.append(button);
  }
  return li;
}

/**
 * Fill `li` for `msg`. opts: {selfId, canEdit, canDelete, canReact, names(userIds) ->
 * text for a tooltip}. Called again after every change of the message.
 */
export function fillMessage(li, msg, opts) {
  const own = String(msg.owner ?? "") === opts.selfId;
  li.dataset.id = msg._id;
  li.dataset.own = own ? "true" : "false";
  li.dataset.owner = String(msg.owner ?? "");
  li.dataset.deleted = msg.deleted ? "true" : "false";
  li.dataset.edited = msg.edited ? "true" : "false";
  li.classList.toggle("own", own);
  li.classList.toggle("other", !own);
  li.classList.toggle("deleted", msg.deleted);

  li.querySelector(".author").textContent = own ? `${msg.userName ?? ""} (you)` : String(msg.userName ?? "Unknown");
  const time = li.querySelector(".time");
  const when = formatTime(msg.createdAt);
  time.textContent = when.short;
  time.title = when.full;
  if (msg.createdAt) time.dateTime = String(msg.createdAt);

  const edited = li.querySelector(".edited");
  edited.hidden = !msg.edited || msg.deleted;
  edited.title = msg.edited ? `Edited ${formatTime(msg.edited).full}` : "";

  fillReply(li.querySelector(".reply-quote"), msg.replyTo, opts.selfId);

  const text = li.querySelector(".text");
  text.textContent = msg.deleted ? "This message was deleted." : htmlToText(msg.text);

  fillReactions(li.querySelector(".reactions"), msg, opts);

  const canReact = opts.canReact && !msg.deleted;
  li.querySelector('[data-action="reply"]').hidden = !canReact;
  li.querySelector('[data-action="pick"]').hidden = !canReact;
  li.querySelector('[data-action="edit"]').hidden = !(opts.canEdit && !msg.deleted);
  li.querySelector('[data-action="delete"]').hidden = !(opts.canDelete && !msg.deleted);
  const actions = li.querySelector(".message-actions");
  actions.hidden = [...actions.children].every((b) => b.hidden);
  if (!canReact) closePicker(li);
}

function fillReply(quote, reply, selfId) {
  quote.hidden = !reply;
  if (!reply) return;
  quote.dataset.replyTo = reply._id;
  const author = reply.owner === selfId ? "You" : reply.userName || "Unknown";
  quote.querySelector(".reply-author").textContent = author;
  const excerpt = quote.querySelector(".reply-excerpt");
  excerpt.textContent = reply.excerpt || "Deleted message";
  excerpt.classList.toggle("gone", !reply.excerpt);
  quote.setAttribute("aria-label", `Reply to ${author}: ${reply.excerpt || "a deleted message"}. Show it.`);
}

function fillReactions(list, msg, opts) {
  const items = msg.reactions.map((r) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reaction";
    button.dataset.action = "react";
    button.dataset.emoji = r.emoji;
    button.dataset.testid = "reaction";
    const mine = r.users.includes(opts.selfId);
    button.setAttribute("aria-pressed", mine ? "true" : "false");
    const emoji = document.createElement("span");
    emoji.className = "reaction-emoji";
    emoji.textContent = r.emoji;
    const count = document.createElement("span");
    count.className = "reaction-count";
    count.dataset.testid = "reaction-count";
    count.textContent = String(r.count);
    button.append(emoji, count);
    const who = opts.names(r.users.slice(0, NAMES_IN_TITLE));
    const others = r.count - Math.min(r.users.length, NAMES_IN_TITLE);
    button.title = who ? (others > 0 ? `${who} and ${others} more` : who) : `${r.count}`;
    button.setAttribute("aria-label", `${r.emoji} ${r.count}${mine ? ", including you" : ""}`);
    button.disabled = !opts.canReact;
    li.append(button);
    return li;
  });
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}

/** Show or hide the emoji picker of a message. */
export function togglePicker(li, open) {
  const picker = li.querySelector(".reaction-picker");
  const button = li.querySelector('[data-action="pick"]');
  const next = open ?? picker.hidden;
  picker.hidden = !next;
  button.setAttribute("aria-expanded", next ? "true" : "false");
  li.classList.toggle("picking", next);
  if (next) picker.querySelector("button")?.focus();
}

export function closePicker(li) {
  const picker = li.querySelector(".reaction-picker");
  if (picker && !picker.hidden) togglePicker(li, false);
}

/** The "Seen" line under a message: `label` ("" to hide it). */
export function setSeen(li, label) {
  const seen = li.querySelector(".seen");
  seen.textContent = label;
  seen.hidden = !label;
}

/** A message's excerpt for the composer's "Replying to" line (as the server would cut it). */
export function excerptOf(msg, max = 140) {
  const text = htmlToText(msg.text).replace(/\s+/g, " ").trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
