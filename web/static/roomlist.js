// The sidebar's room list: the user's rooms, newest activity first, each with its
// newest message, its unread count (and whether the user is mentioned), whether a direct
// room's other person is online, and who is typing there, kept in step with the live
// events.
//
// The list starts from a snapshot (`GET /rooms`) and changes with events (`roomJoined`,
// `roomLeft`, `roomUpdated`, `memberChanged`, `message`) and with the page's own
// actions. A snapshot in flight may or may not include an event that arrives meanwhile,
// so every change made while a snapshot loads is recorded and applied again on top of
// it: events of one room arrive in order, so the last one applied is the newest.
//
// Unread counts (docs/ROOM_STATE.md, "Read state"): the snapshot gives each room
// `lastRead`, `unread` and `mentions`, counted up to its newest message (`countedTo`).
// A message after that by someone else, and after the marker, counts once more (so a
// change applied again on top of a snapshot that already counted it does not count it
// twice). A marker that moves past `countedTo` clears both counts; one that stops short
// of it leaves counts only the server knows: the caller fetches the list again.

import { compareIds, htmlToText, isId, maxId } from "./util.js";
import { describePresence, fillDot } from "./presence.js";

export const GLOBAL_ROOM_ID = "00000000-0000-0000-0000-000000000000";
const KINDS = new Set(["public", "private", "direct"]);
const ROLES = new Set(["owner", "admin", "member"]);
const PREVIEW_CHARS = 120;
const MOST_UNREAD = 999; // the API counts up to this many

function validMessage(msg) {
  return msg && typeof msg === "object" && isId(msg._id) && typeof msg.text === "string";
}

function newerMessage(a, b) {
  if (!a) return b;
  if (!b) return a;
  return compareIds(String(a._id), String(b._id)) >= 0 ? a : b;
}

/** The fields of a room as the API or an event gives them; absent ones stay undefined. */
function fieldsOf(raw) {
  const out = {};
  if (typeof raw.kind === "string" && KINDS.has(raw.kind)) out.kind = raw.kind;
  if (raw.name !== undefined) out.name = String(raw.name ?? "");
  if (raw.topic !== undefined) out.topic = raw.topic === null ? "" : String(raw.topic);
  if (raw.archived !== undefined) out.archived = Boolean(raw.archived);
  if (raw.role !== undefined) out.role = ROLES.has(raw.role) ? raw.role : null;
  if (Number.isSafeInteger(raw.memberCount)) out.memberCount = raw.memberCount;
  if (raw.peer !== undefined) {
    out.peer = raw.peer && typeof raw.peer === "object" ? { id: String(raw.peer.id ?? ""), name: String(raw.peer.name ?? "") } : null;
  }
  if (validMessage(raw.lastMessage)) out.lastMessage = { ...raw.lastMessage, _id: String(raw.lastMessage._id) };
  if (raw.lastRead !== undefined) out.lastRead = isId(raw.lastRead) ? String(raw.lastRead) : null;
  if (Number.isSafeInteger(raw.unread) && raw.unread >= 0) out.unread = raw.unread;
  if (Number.isSafeInteger(raw.mentions) && raw.mentions >= 0) out.mentions = raw.mentions;
  if (typeof raw.receipts === "boolean") out.receipts = raw.receipts;
  return out;
}

/** Whether `text` (sanitized HTML) mentions `name` as `@name`, in any case. */
export function mentions(text, name) {
  if (!name) return false;
  return htmlToText(text).toLowerCase().includes(`@${name.toLowerCase()}`);
}

function blankRoom(id) {
  const global = id === GLOBAL_ROOM_ID;
  return {
    id,
    kind: global ? "public" : "private",
    name: global ? "General" : "",
    topic: "",
    archived: false,
    role: global ? "member" : null,
    memberCount: null,
    peer: null,
    lastMessage: null,
    activity: 0n, // the newest `_id` seen for the room: its message or its joining
    lastRead: null, // the user's read marker: a message `_id`, or null before the first
    unread: 0,
    mentions: 0,
    countedTo: 0n, // the newest message `_id` that `unread` accounts for
    receipts: false, // group rooms: whether members see read receipts
  };
}

/** Whether members of `room` see how far the others have read (direct rooms always). */
export function showsReceipts(room) {
  return Boolean(room) && (room.kind === "direct" || room.receipts === true);
}

/** The name a person sees for a room: a direct room goes by the other person's name. */
export function roomName(room) {
  if (!room) return "";
  if (room.kind === "direct") return room.peer?.name || room.name || "Direct message";
  if (room.id === GLOBAL_ROOM_ID) return room.name || "General";
  return room.name || "Unnamed room";
}

export class RoomList {
  /**
   * list: the <ul>; template: a <template> holding one room item; selfId(), selfName():
   * the signed-in user (to say "You", to find mentions); onSelect(roomId): a room was
   * clicked; presenceOf(userId): what is known of a user's presence (or null);
   * typingOf(roomId): who types there, as text ("" for nobody).
   */
  constructor({ list, template, selfId, selfName, onSelect, presenceOf, typingOf }) {
    this.list = list;
    this.template = template;
    this.selfId = selfId;
    this.selfName = selfName;
    this.onSelect = onSelect;
    this.presenceOf = presenceOf;
    this.typingOf = typingOf;
    this.activeId = GLOBAL_ROOM_ID;
    this.loaded = false;
    this.rooms = new Map();
    this.items = new Map(); // room id -> <li>
    this.pending = null; // changes to apply again on top of the snapshot in flight
    this.loads = 0; // snapshots in flight
    this.started = 0; // number of the newest snapshot started
    this.applied = 0; // number of the newest snapshot applied
    this.renderQueued = false;
    this.reset();
  }

  /** Signed out or in again: only the global room, until a snapshot arrives. */
  reset() {
    this.rooms = new Map([[GLOBAL_ROOM_ID, blankRoom(GLOBAL_ROOM_ID)]]);
    this.items = new Map();
    this.list.replaceChildren();
    this.activeId = GLOBAL_ROOM_ID;
    this.loaded = false;
    this.pending = null;
    this.loads = 0;
    this.started = 0;
    this.applied = 0;
    this.render();
  }

  get(id) {
    return this.rooms.get(id) ?? null;
  }

  /** A snapshot is on its way. */
  get loading() {
    return this.loads > 0;
  }

  has(id) {
    return this.rooms.has(id);
  }

  setActive(id) {
    this.activeId = id;
    this.schedule();
  }

  // ---- snapshots --------------------------------------------------------------------------

  /** A `GET /rooms` starts; returns its ticket for `endLoad`. */
  beginLoad() {
    if (this.loads === 0) this.pending = [];
    this.loads += 1;
    this.started += 1;
    return this.started;
  }

  /** It ended: `rooms` is its answer, or null if it failed. */
  endLoad(ticket, rooms) {
    if (Array.isArray(rooms) && ticket > this.applied) {
      this.applied = ticket;
      this.replaceWith(rooms);
      for (const change of this.pending ?? []) change();
      this.loaded = true;
    }
    this.loads = Math.max(0, this.loads - 1);
    if (this.loads === 0) this.pending = null;
    this.schedule();
  }

  replaceWith(rooms) {
    const next = new Map();
    for (const raw of rooms) {
      if (!raw || typeof raw !== "object" || typeof raw.id !== "string") continue;
      const room = { ...blankRoom(raw.id), ...fieldsOf(raw) };
      room.activity = room.lastMessage ? BigInt(room.lastMessage._id) : 0n;
      room.countedTo = room.activity;
      next.set(room.id, room);
    }
    // Every account is in the global room; keep it listed even if the answer omits it.
    if (!next.has(GLOBAL_ROOM_ID)) next.set(GLOBAL_ROOM_ID, this.rooms.get(GLOBAL_ROOM_ID) ?? blankRoom(GLOBAL_ROOM_ID));
    this.rooms = next;
  }

  // ---- changes ------------------------------------------------------------------------------

  change(fn) {
    fn();
    if (this.pending) this.pending.push(fn);
    this.schedule();
  }

  /** A room the user is now in (created, joined, added, direct room opened); `seq` its `_id`. */
  joined(raw, seq = null) {
    if (!raw || typeof raw.id !== "string") return;
    this.change(() => {
      const known = this.rooms.get(raw.id);
      const room = known ?? blankRoom(raw.id);
      const { lastRead, unread, mentions: mentioned, ...fields } = fieldsOf(raw);
      const lastMessage = newerMessage(room.lastMessage, fields.lastMessage ?? null);
      Object.assign(room, fields, { lastMessage });
      let activity = room.activity;
      if (lastMessage && BigInt(lastMessage._id) > activity) activity = BigInt(lastMessage._id);
      if (isId(seq) && BigInt(seq) > activity) activity = BigInt(seq);
      room.activity = activity;
      if (!known) {
        // New here: what it held before is not news (unless the answer counts it).
        room.countedTo = lastMessage ? BigInt(lastMessage._id) : 0n;
        room.lastRead = lastRead ?? null;
        room.unread = unread ?? 0;
        room.mentions = mentioned ?? 0;
      }
      this.rooms.set(room.id, room);
    });
  }

  /** The user left or was removed. The global room is never left. */
  left(id) {
    if (id === GLOBAL_ROOM_ID) return;
    this.change(() => this.rooms.delete(id));
  }

  /** Name, topic or archived changed. */
  updated(raw) {
    if (!raw || typeof raw.id !== "string") return;
    this.change(() => {
      const room = this.rooms.get(raw.id);
      if (!room) return;
      const { name, topic, archived, receipts } = fieldsOf(raw);
      if (name !== undefined) room.name = name;
      if (topic !== undefined) room.topic = topic;
      if (archived !== undefined) room.archived = archived;
      if (receipts !== undefined) room.receipts = receipts;
    });
  }

  /** The user's own role in a room changed. */
  roleChanged(id, role) {
    this.change(() => {
      const room = this.rooms.get(id);
      if (room) room.role = ROLES.has(role) ? role : null;
    });
  }

  /** A fresh `GET /rooms/{id}` of a room already listed (role, member count, name...). */
  refreshed(raw) {
    if (!raw || typeof raw.id !== "string") return;
    this.change(() => {
      const room = this.rooms.get(raw.id);
      if (!room) return;
      // Read state comes with the list only; the counts kept here are as new.
      const { lastMessage, lastRead, unread, mentions: mentioned, ...fields } = fieldsOf(raw);
      Object.assign(room, fields);
      room.lastMessage = newerMessage(room.lastMessage, lastMessage ?? null);
    });
  }

  /**
   * A message of a room the user is in: it may be the room's newest, and unread unless
   * `seen` (the user is looking at it) or it is their own.
   */
  message(msg, roomId, { seen = false } = {}) {
    if (!validMessage(msg)) return;
    const own = String(msg.owner ?? "") === this.selfId();
    const mention = !own && mentions(msg.text, this.selfName());
    this.change(() => {
      const room = this.rooms.get(roomId);
      if (!room) return;
      const id = String(msg._id);
      room.lastMessage = newerMessage(room.lastMessage, { ...msg, _id: id });
      if (BigInt(id) > room.activity) room.activity = BigInt(id);
      if (BigInt(id) <= room.countedTo) return;
      room.countedTo = BigInt(id);
      // Seen where it arrived, or written here: not unread (the page moves the marker).
      if (seen || own) return;
      if (room.lastRead !== null && compareIds(id, room.lastRead) <= 0) return;
      room.unread = Math.min(MOST_UNREAD, room.unread + 1);
      if (mention) room.mentions = Math.min(MOST_UNREAD, room.mentions + 1);
    });
  }

  /**
   * The user's read marker of a room moved to `lastRead` (here, or `readUpdated` from
   * any of their devices). Returns false when the counts after it are unknown here: the
   * caller fetches the list again.
   */
  read(roomId, lastRead) {
    if (!isId(lastRead)) return true;
    const id = String(lastRead);
    let known = true;
    this.change(() => {
      const room = this.rooms.get(roomId);
      if (room) known = this.moveMarker(room, id);
    });
    return known;
  }

  moveMarker(room, id) {
    room.lastRead = maxId(room.lastRead, id);
    if (BigInt(room.lastRead) >= room.countedTo) {
      room.unread = 0;
      room.mentions = 0;
      return true;
    }
    return room.unread === 0;
  }

  /** An edit or deletion of a message: the room's newest line follows it. */
  messageChanged(roomId, messageId, change) {
    this.change(() => {
      const room = this.rooms.get(roomId);
      const last = room?.lastMessage;
      if (!last || last._id !== String(messageId)) return;
      if (change.deleted) room.lastMessage = { ...last, deleted: true, text: "" };
      else if (typeof change.text === "string") room.lastMessage = { ...last, text: change.text, edited: change.edited };
    });
  }

  /** Presence or typing changed: the list shows them, so draw it again. */
  refresh() {
    this.schedule();
  }

  // ---- rendering ----------------------------------------------------------------------------

  schedule() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /**
   * The global room first (as `GET /rooms` lists it), then newest activity first; rooms
   * without any keep the snapshot's order (a stable sort).
   */
  ordered() {
    const rank = (room) => (room.id === GLOBAL_ROOM_ID ? 0 : 1);
    return [...this.rooms.values()].sort((a, b) => {
      if (rank(a) !== rank(b)) return rank(a) - rank(b);
      return a.activity < b.activity ? 1 : a.activity > b.activity ? -1 : 0;
    });
  }

  render() {
    const rooms = this.ordered();
    const wanted = new Set(rooms.map((room) => room.id));
    for (const [id, li] of this.items) {
      if (!wanted.has(id)) {
        li.remove();
        this.items.delete(id);
      }
    }
    let previous = null;
    for (const room of rooms) {
      let li = this.items.get(room.id);
      if (!li) {
        li = this.createItem(room.id);
        this.items.set(room.id, li);
      }
      this.fill(li, room);
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== li) this.list.insertBefore(li, expected);
      previous = li;
    }
  }

  createItem(id) {
    const li = this.template.content.firstElementChild.cloneNode(true);
    li.dataset.roomId = id;
    li.querySelector("button").addEventListener("click", () => this.onSelect(id));
    return li;
  }

  fill(li, room) {
    const active = room.id === this.activeId;
    const name = roomName(room);
    li.dataset.kind = room.kind;
    li.dataset.active = active ? "true" : "false";
    li.classList.toggle("active", active);
    const button = li.querySelector("button");
    if (active) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    li.querySelector(".room-glyph").textContent = room.kind === "direct" ? "@" : "#";
    li.querySelector(".room-name").textContent = name;
    const tag = li.querySelector(".room-tag");
    tag.textContent = room.archived ? "archived" : room.kind === "private" ? "private" : "";
    tag.hidden = !tag.textContent;

    // A direct room shows whether the other person is online.
    const presence = room.kind === "direct" && room.peer ? this.presenceOf(room.peer.id) : null;
    fillDot(li.querySelector(".presence-dot"), presence);
    li.dataset.online = presence ? String(presence.online) : "unknown";

    const unread = li.querySelector(".room-unread");
    unread.hidden = room.unread <= 0;
    li.querySelector(".room-unread-count").textContent = room.unread >= MOST_UNREAD ? `${MOST_UNREAD}+` : String(room.unread);
    li.querySelector(".room-mention").hidden = room.mentions <= 0;
    li.dataset.unread = String(room.unread);
    li.classList.toggle("unread", room.unread > 0);

    const typing = this.typingOf(room.id);
    const preview = li.querySelector(".room-preview");
    const msg = room.lastMessage;
    const previewKey = typing ? `typing:${typing}` : msg ? `${msg._id}:${msg.edited ?? ""}:${msg.deleted ? 1 : 0}` : "";
    if (preview.dataset.key !== previewKey || !preview.textContent) {
      preview.dataset.key = previewKey;
      preview.dataset.lastId = msg ? msg._id : "";
      preview.textContent = typing || this.previewOf(room);
      preview.classList.toggle("typing", Boolean(typing));
    }
    const seen = describePresence(presence);
    li.title = [room.topic ? `${name}: ${room.topic}` : name, seen].filter(Boolean).join(" · ");
  }

  previewOf(room) {
    const msg = room.lastMessage;
    if (!msg) return "No messages yet";
    const own = String(msg.owner ?? "") === this.selfId();
    const author = own ? "You" : String(msg.userName ?? "Unknown");
    if (msg.deleted === true) return `${author}: message deleted`;
    let text = htmlToText(msg.text).replace(/\s+/g, " ");
    if (text.length > PREVIEW_CHARS) text = `${text.slice(0, PREVIEW_CHARS - 1)}…`;
    return `${author}: ${text}`;
  }
}
