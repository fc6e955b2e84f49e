// The sidebar's room list: the user's rooms, newest activity first, each with its
// newest message, kept in step with the live events.
//
// The list starts from a snapshot (`GET /rooms`) and changes with events (`roomJoined`,
// `roomLeft`, `roomUpdated`, `memberChanged`, `message`) and with the page's own
// actions. A snapshot in flight may or may not include an event that arrives meanwhile,
// so every change made while a snapshot loads is recorded and applied again on top of
// it: events of one room arrive in order, so the last one applied is the newest.

import { compareIds, htmlToText, isId } from "./util.js";

export const GLOBAL_ROOM_ID = "00000000-0000-0000-0000-000000000000";
const KINDS = new Set(["public", "private", "direct"]);
const ROLES = new Set(["owner", "admin", "member"]);
const PREVIEW_CHARS = 120;

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
  return out;
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
  };
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
   * list: the <ul>; template: a <template> holding one room item; selfId(): the signed-in
   * user's id (to say "You"); onSelect(roomId): a room was clicked.
   */
  constructor({ list, template, selfId, onSelect }) {
    this.list = list;
    this.template = template;
    this.selfId = selfId;
    this.onSelect = onSelect;
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
      const room = this.rooms.get(raw.id) ?? blankRoom(raw.id);
      const fields = fieldsOf(raw);
      const lastMessage = newerMessage(room.lastMessage, fields.lastMessage ?? null);
      Object.assign(room, fields, { lastMessage });
      let activity = room.activity;
      if (lastMessage && BigInt(lastMessage._id) > activity) activity = BigInt(lastMessage._id);
      if (isId(seq) && BigInt(seq) > activity) activity = BigInt(seq);
      room.activity = activity;
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
      const { name, topic, archived } = fieldsOf(raw);
      if (name !== undefined) room.name = name;
      if (topic !== undefined) room.topic = topic;
      if (archived !== undefined) room.archived = archived;
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
      const { lastMessage, ...fields } = fieldsOf(raw);
      Object.assign(room, fields);
      room.lastMessage = newerMessage(room.lastMessage, lastMessage ?? null);
    });
  }

  /** A message of a room the user is in: it may be the room's newest. */
  message(msg, roomId) {
    if (!validMessage(msg)) return;
    this.change(() => {
      const room = this.rooms.get(roomId);
      if (!room) return;
      const id = String(msg._id);
      room.lastMessage = newerMessage(room.lastMessage, { ...msg, _id: id });
      if (BigInt(id) > room.activity) room.activity = BigInt(id);
    });
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
    li.querySelector(".room-icon").textContent = room.kind === "direct" ? "@" : "#";
    li.querySelector(".room-name").textContent = name;
    const tag = li.querySelector(".room-tag");
    tag.textContent = room.archived ? "archived" : room.kind === "private" ? "private" : "";
    tag.hidden = !tag.textContent;
    const previewKey = room.lastMessage ? room.lastMessage._id : "";
    const preview = li.querySelector(".room-preview");
    if (preview.dataset.lastId !== previewKey || !preview.textContent) {
      preview.dataset.lastId = previewKey;
      preview.textContent = this.previewOf(room);
    }
    li.title = room.topic ? `${name}: ${room.topic}` : name;
  }

  previewOf(room) {
    const msg = room.lastMessage;
    if (!msg) return "No messages yet";
    const own = String(msg.owner ?? "") === this.selfId();
    const author = own ? "You" : String(msg.userName ?? "Unknown");
    let text = htmlToText(msg.text).replace(/\s+/g, " ");
    if (text.length > PREVIEW_CHARS) text = `${text.slice(0, PREVIEW_CHARS - 1)}…`;
    return `${author}: ${text}`;
  }
}
