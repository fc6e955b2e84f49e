// Who is online (docs/ROOM_STATE.md, "Presence").
//
// Presence is state, not history: the page reads it over REST
// (`GET /rooms/{room}/presence`) when it connects or opens something that shows it, and
// the gateway pushes `presence` `{user, online, lastSeen}` for the people who share a
// small room with the user. One store keeps what the page knows of each user; the room
// list (direct rooms), the room header and the members list read it and are told when
// it changes.
//
// A REST answer may have been computed before an event that arrived while it travelled:
// a user's entry written by an event after a request started is not overwritten by the
// request's answer.

import { roomPath } from "./api.js";
import { formatTime } from "./util.js";

export class Presence {
  constructor() {
    this.users = new Map(); // user id -> {online, lastSeen, stamp}
    this.listeners = new Set();
    this.clock = 0; // counts the changes, to order answers against events
  }

  reset() {
    this.users = new Map();
    this.clock += 1;
  }

  /** Call `fn(userIds)` after every change (a Set of the users that changed). */
  onChange(fn) {
    this.listeners.add(fn);
  }

  get(userId) {
    return this.users.get(String(userId)) ?? null;
  }

  /** A live `presence` event. */
  event(payload) {
    if (!payload || payload.user == null || typeof payload.online !== "boolean") return;
    this.clock += 1;
    const changed = this.put(String(payload.user), payload.online, payload.lastSeen, this.clock);
    if (changed) this.notify(new Set([String(payload.user)]));
  }

  /** Members of a presence answer whose request started at `since` (see `begin`). */
  answered(members, since) {
    const changed = new Set();
    for (const m of Array.isArray(members) ? members : []) {
      if (!m || m.id == null || typeof m.online !== "boolean") continue;
      const id = String(m.id);
      const known = this.users.get(id);
      if (known && known.stamp > since) continue; // an event told us something newer
      if (this.put(id, m.online, m.lastSeen, known?.stamp ?? 0)) changed.add(id);
    }
    if (changed.size) this.notify(changed);
  }

  /** A request is about to start: what to pass to `answered` with its answer. */
  begin() {
    return this.clock;
  }

  put(id, online, lastSeen, stamp) {
    const seen = typeof lastSeen === "string" && lastSeen ? lastSeen : null;
    const known = this.users.get(id);
    this.users.set(id, { online, lastSeen: seen, stamp });
    return !known || known.online !== online || known.lastSeen !== seen;
  }

  notify(ids) {
    for (const fn of this.listeners) fn(ids);
  }

  /**
   * `GET /rooms/{room}/presence` through `api`: stores the members' presence and returns
   * the answer (`{online, members, next}`), or null when it failed.
   */
  async load(api, roomId, limit, cursor = null) {
    const since = this.begin();
    const params = new URLSearchParams({ limit: String(limit) });
    if (cursor) params.set("cursor", cursor);
    let data;
    try {
      data = await api("GET", roomPath(roomId, `/presence?${params}`));
    } catch {
      return null; // presence is a nicety: the page works without it
    }
    if (!data || typeof data !== "object") return null;
    this.answered(data.members, since);
    return data;
  }
}

/** "Online", "Last seen 14:02" (or "Last seen Mar 3 14:02"), or "" when unknown. */
export function describePresence(state) {
  if (!state) return "";
  if (state.online) return "Online";
  if (!state.lastSeen) return "Offline";
  const when = formatTime(state.lastSeen);
  return when.short ? `Last seen ${when.short}` : "Offline";
}

/** Mark a dot element for a presence state: data-online "true" | "false" | "unknown". */
export function fillDot(dot, state) {
  dot.dataset.online = state ? (state.online ? "true" : "false") : "unknown";
  dot.hidden = !state;
  dot.title = describePresence(state);
}
