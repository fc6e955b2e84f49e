// What the user has read, and what others have (docs/ROOM_STATE.md, "Read state").
//
// * The read marker: once the user sees the newest message of the open room (the page
//   is visible and scrolled to the bottom), the page moves the marker there with
//   `PUT /rooms/{room}/read`, debounced so that a burst of messages is one request. The
//   room list's counts follow at once; the server tells the user's other devices
//   (`readUpdated`).
// * The "New messages" divider: where the unread messages began when the room opened.
// * Receipts: how far the other members have read, from `GET /rooms/{room}/receipts`
//   and the batched live `receipts` events; markers only move forward, so the greatest
//   `lastRead` seen of each reader is kept.

import { isUnauthorized, roomPath } from "./api.js";
import { compareIds, isId, maxId } from "./util.js";

const READ_DELAY_MS = 400;

export class ReadMarker {
  /**
   * api; rooms (RoomList); seeing(): `{roomId, newest}` when the user sees the newest
   * message of the open room, else null; expired(): the token was refused.
   */
  constructor({ api, rooms, seeing, expired }) {
    this.api = api;
    this.rooms = rooms;
    this.seeing = seeing;
    this.expired = expired;
    this.timer = null;
    this.pending = null; // {roomId, newest}: seen, to be sent when the delay is over
    this.sent = new Map(); // room id -> the greatest marker sent
  }

  /**
   * Something the user may have seen changed (scroll, new message, page shown). What
   * they saw is remembered: it is sent even if they switch rooms before the delay ends.
   */
  note() {
    const seen = this.wanted(this.seeing());
    if (!seen) return;
    if (this.pending && this.pending.roomId !== seen.roomId) this.flush();
    this.pending = seen;
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, READ_DELAY_MS);
    }
  }

  /** `seen` if it moves the marker of its room, else null. */
  wanted(seen) {
    if (!seen || !isId(seen.newest)) return null;
    const sent = this.sent.get(seen.roomId);
    if (sent && compareIds(seen.newest, sent) <= 0) return null;
    const room = this.rooms.get(seen.roomId);
    if (!room) return null;
    // Already there (another device moved it): the counts may still need clearing.
    if (room.lastRead !== null && compareIds(seen.newest, room.lastRead) <= 0 && room.unread === 0) return null;
    return seen;
  }

  async flush() {
    const seen = this.wanted(this.pending);
    this.pending = null;
    if (!seen) return;
    const { roomId, newest } = seen;
    this.sent.set(roomId, newest);
    this.rooms.read(roomId, newest);
    try {
      await this.api("PUT", roomPath(roomId, "/read"), { body: { lastRead: newest } });
    } catch (err) {
      if (isUnauthorized(err)) this.expired();
      else if (this.sent.get(roomId) === newest) this.sent.delete(roomId); // try again later
    }
  }

  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
    this.sent.clear();
  }
}

/**
 * Where the divider goes in `messages` (sorted by `_id`): before the first message by
 * someone else after `readFrom`; without a marker, before the last `unread` of theirs.
 * Returns that message's `_id`, or null for no divider.
 */
export function dividerBefore(messages, readFrom, unread, selfId) {
  if (!(unread > 0)) return null;
  const others = messages.filter((m) => String(m.owner ?? "") !== selfId);
  if (readFrom !== null) {
    const first = others.find((m) => compareIds(m._id, readFrom) > 0);
    return first ? first._id : null;
  }
  if (others.length === 0) return null;
  return others[Math.max(0, others.length - unread)]._id;
}

export class Receipts {
  /** onChange(roomId): a reader of that room moved. */
  constructor(onChange) {
    this.onChange = onChange;
    this.rooms = new Map(); // room id -> Map(user id -> lastRead)
  }

  /** Readers `[{user, lastRead}]` of a room, from an answer or a `receipts` event. */
  merge(roomId, readers) {
    if (typeof roomId !== "string" || !Array.isArray(readers)) return;
    let room = this.rooms.get(roomId);
    if (!room) {
      room = new Map();
      this.rooms.set(roomId, room);
    }
    let moved = false;
    for (const r of readers) {
      if (!r || r.user == null || !isId(r.lastRead)) continue;
      const user = String(r.user);
      const before = room.get(user) ?? null;
      const after = maxId(before, String(r.lastRead));
      if (after !== before) {
        room.set(user, after);
        moved = true;
      }
    }
    if (moved) this.onChange(roomId);
  }

  /** `GET /rooms/{room}/receipts`; false when it failed (receipts are a nicety). */
  async load(api, roomId) {
    try {
      const data = await api("GET", roomPath(roomId, "/receipts"));
      this.merge(roomId, Array.isArray(data?.receipts) ? data.receipts : []);
      return true;
    } catch {
      return false;
    }
  }

  readers(roomId) {
    return this.rooms.get(roomId) ?? new Map();
  }

  forget(roomId) {
    this.rooms.delete(roomId);
  }

  reset() {
    this.rooms.clear();
  }
}

/**
 * Which messages get a "Seen" line: for each reader but the user, the newest message
 * they have read that is not their own. `messages` sorted by `_id`; returns a Map of
 * message `_id` -> how many readers stop there.
 */
export function seenMarks(messages, readers, selfId) {
  const marks = new Map();
  for (const [user, lastRead] of readers) {
    if (user === selfId) continue;
    for (let i = messages.length - 1; i >= 0; i -= 1) {
      const m = messages[i];
      if (compareIds(m._id, lastRead) <= 0 && String(m.owner ?? "") !== user) {
        marks.set(m._id, (marks.get(m._id) ?? 0) + 1);
        break;
      }
    }
  }
  return marks;
}
