// "X is typing…" (docs/ROOM_STATE.md, "Typing").
//
// Out: while the user types in a room the page emits `typing` `{room}`, at most once per
// SEND_INTERVAL_MS (the gateway relays at most one every three seconds per connection
// and room; the event lasts `expiresIn`, 6 s, so one every three seconds keeps it shown).
// In: `typing` `{room, user: {id, name}, expiresIn}` shows that user as typing in that
// room until `expiresIn` passes without another, or a message of theirs arrives there.
// Nothing of it is stored anywhere.

export const SEND_INTERVAL_MS = 3000;
const DEFAULT_EXPIRES_MS = 6000;
const LONGEST_EXPIRES_MS = 30000;

export class TypingSender {
  /** emit(roomId): send one `typing` event for the room. */
  constructor(emit) {
    this.emit = emit;
    this.last = new Map(); // room id -> when the last event was sent
  }

  /** The user typed in `roomId`. */
  typed(roomId) {
    const now = Date.now();
    const last = this.last.get(roomId);
    if (last !== undefined && now - last < SEND_INTERVAL_MS) return;
    this.last.set(roomId, now);
    this.emit(roomId);
  }

  /** The user sent their message: the next keystroke starts a new "typing". */
  sent(roomId) {
    this.last.delete(roomId);
  }

  reset() {
    this.last.clear();
  }
}

export class TypingState {
  /** onChange(roomId): who types in that room changed. */
  constructor(onChange) {
    this.onChange = onChange;
    this.rooms = new Map(); // room id -> Map(user id -> {name, timer})
  }

  /** A `typing` event; the user's own (from another of their devices) is not shown. */
  received(event, selfId) {
    const roomId = event.room;
    const user = event.user;
    if (typeof roomId !== "string" || !user || user.id == null) return;
    const userId = String(user.id);
    if (userId === selfId) return;
    let expires = Number(event.expiresIn);
    if (!Number.isFinite(expires) || expires <= 0) expires = DEFAULT_EXPIRES_MS;
    expires = Math.min(expires, LONGEST_EXPIRES_MS);
    let typists = this.rooms.get(roomId);
    if (!typists) {
      typists = new Map();
      this.rooms.set(roomId, typists);
    }
    const known = typists.get(userId);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopped(roomId, userId), expires);
    typists.set(userId, { name: String(user.name ?? "Someone"), timer });
    if (!known) this.onChange(roomId);
  }

  /** The user is not typing there any more (expired, or their message arrived). */
  stopped(roomId, userId) {
    const typists = this.rooms.get(roomId);
    const known = typists?.get(String(userId));
    if (!known) return;
    clearTimeout(known.timer);
    typists.delete(String(userId));
    if (typists.size === 0) this.rooms.delete(roomId);
    this.onChange(roomId);
  }

  /** Names of who types in `roomId`, in the order they started. */
  names(roomId) {
    const typists = this.rooms.get(roomId);
    return typists ? [...typists.values()].map((t) => t.name) : [];
  }

  /** Forget a room (left) or everything (signed out). */
  clear(roomId = null) {
    const ids = roomId === null ? [...this.rooms.keys()] : [roomId];
    for (const id of ids) {
      for (const t of this.rooms.get(id)?.values() ?? []) clearTimeout(t.timer);
      if (this.rooms.delete(id)) this.onChange(id);
    }
  }
}

/** "Ann is typing…", "Ann and Ben are typing…", "Several people are typing…", or "". */
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}
