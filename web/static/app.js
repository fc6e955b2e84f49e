// The chat page: plain ES modules, no framework, no bundler.
//
// REST and Socket.IO share this page's origin (the load balancer routes /socket.io/ to
// the gateways and everything else to the API). The session (token, user id, name) is
// kept in localStorage.
//
// One Socket.IO connection carries all of the user's rooms (docs/ROOMS.md): `message`
// for every room, and the membership events. The page keeps ONE cursor, the largest
// `_id` it received on that connection, and reconnects with it so the gateway replays
// what was missed in every room, or says which to fetch again over REST.
//
// The active room's messages are kept in one Map keyed by `_id` (so every source --
// history, POST replies, live events, catch-up after a reconnect -- de-duplicates) and
// rendered in numeric `_id` order. Messages of the other rooms only update the room
// list's newest-message line and unread count; opening a room loads its history.
//
// Live room state (docs/ROOM_STATE.md): edits, deletions and reactions are room events
// in the same order as the messages (they move the cursor and are replayed); presence,
// typing, read markers and receipts are not replayed, so the page reads them over REST
// whenever it (re)connects and follows their events in between.

import { ApiError, NetworkError, createApi, describeError, isNoAccess, isUnauthorized, roomPath } from "./api.js";
import { setupDialogs } from "./dialogs.js";
import {
  applyChange,
  closePicker,
  createMessageItem,
  excerptOf,
  fillMessage,
  mergeChanges,
  normalizeMessage,
  reactedWith,
  setSeen,
  toggledReactions,
  togglePicker,
} from "./messageview.js";
import { Presence, describePresence } from "./presence.js";
import { ReadMarker, Receipts, dividerBefore, seenMarks } from "./reading.js";
import { GLOBAL_ROOM_ID, RoomList, roomName, showsReceipts } from "./roomlist.js";
import { TypingSender, TypingState, typingText } from "./typing.js";
import { compareIds, delay, htmlToText, isId, maxId, setError, show } from "./util.js";

const SESSION_KEY = "chat.session";
const PAGE_SIZE = 50; // history page shown when a room opens and per "Load older"
const CATCH_UP_PAGE = 500; // the API's maximum limit
const SEND_RETRIES = 4; // automatic retries of one send after network failures
const NEAR_BOTTOM_PX = 80;
const REFRESH_DELAY_MS = 300; // membership changes of the open room, gathered into one GET
const RECOUNT_DELAY_MS = 1000; // markers the list cannot count itself, gathered into one GET /rooms
const ONLINE_COUNT_DELAY_MS = 2000; // presence changes, gathered into one online count of the open room
const DIRECT_PRESENCE_ROOMS = 30; // direct rooms whose other person's presence is read on connect
const PRESENCE_PUSH_MAX_MEMBERS = 100; // larger rooms get no presence events (docs/ROOM_STATE.md)
const TYPING_MAX_MEMBERS = 1000; // larger rooms, and the global room, refuse typing (docs/ROOM_STATE.md)
const KEPT_CHANGES = 200; // changes of messages not shown yet, kept for a history answer on its way
const NO_HOVER = window.matchMedia("(hover: none)"); // phones: a tap shows a message's actions
const EXPIRED = "Your session has expired. Please sign in again.";

const $ = (id) => document.getElementById(id);

const ui = {
  status: $("status"),
  statusLabel: document.querySelector("#status .status-label"),
  session: $("session"),
  currentUser: $("current-user"),
  signout: $("signout"),
  authView: $("auth-view"),
  signinForm: $("signin-form"),
  signinNotice: $("signin-notice"),
  signinError: $("signin-error"),
  signupForm: $("signup-form"),
  signupError: $("signup-error"),
  chatView: $("chat-view"),
  // the room list
  roomList: $("room-list"),
  roomTemplate: $("room-template"),
  roomsLoading: $("rooms-loading"),
  roomsErrorBox: $("rooms-error-box"),
  roomsError: $("rooms-error"),
  roomsRetry: $("rooms-retry"),
  createRoom: $("create-room"),
  browseRooms: $("browse-rooms"),
  newDirect: $("new-direct"),
  // the active room
  back: $("back-to-rooms"),
  roomTitle: $("room-title"),
  roomKind: $("room-kind"),
  roomCount: $("room-count"),
  roomTopic: $("room-topic"),
  membersButton: $("members-button"),
  inviteButton: $("invite-button"),
  leaveButton: $("leave-button"),
  roomError: $("room-error"),
  roomNotice: $("room-notice"),
  roomNoticeText: $("room-notice-text"),
  roomNoticeAction: $("room-notice-action"),
  scroller: $("scroller"),
  loadOlder: $("load-older"),
  historyStart: $("history-start"),
  historyError: $("history-error"),
  list: $("messages"),
  empty: $("empty"),
  composer: $("composer"),
  input: $("composer-input"),
  send: $("send"),
  sendError: $("send-error"),
  template: $("message-template"),
  dividerTemplate: $("divider-template"),
  roomPresence: $("room-presence"),
  typing: $("typing"),
  context: $("composer-context"),
  contextLabel: $("composer-context-label"),
  contextExcerpt: $("composer-context-excerpt"),
  contextCancel: $("composer-context-cancel"),
};

// ---- state ----------------------------------------------------------------------------

let session = loadSession(); // {token, userId, name} or null
let socket = null;
let generation = 0; // bumps on sign-out so late responses of an old session are dropped
let cursor = null; // the largest `_id` received on the connection, for all rooms
let pendingSend = null; // {roomId, id, text, replyTo}: reused while the same text is retried
const drafts = new Map(); // room id -> unsent text
const refreshTimers = new Map(); // room id -> timer of a pending room refresh
let recountTimer = null; // a GET /rooms for counts the list cannot work out itself
let onlineTimer = null; // a new online count of the open room
// What the composer does besides posting: null, {kind: "reply", roomId, id} or
// {kind: "edit", roomId, id, draft} (draft: what the box held before the edit began).
let composing = null;

let viewTickets = 0;

/** What the room pane shows. A new object per opened room; `ticket` drops stale answers. */
function newView(roomId) {
  return {
    roomId,
    ticket: ++viewTickets,
    messages: new Map(), // _id -> message
    rendered: new Map(), // _id -> <li>
    hasOlder: false,
    loading: true,
    gone: null, // null, or why the room is no longer the user's: "left" | "removed" | "unavailable"
    title: "",
    changes: new Map(), // _id -> a change of a message not shown yet (its history is on its way)
    readFrom: null, // the read marker when the room opened: where "New messages" begins
    unreadAtOpen: 0,
    divider: null, // the divider's <li>, once placed
    seen: new Set(), // _ids whose "Seen" line is shown
    online: null, // how many members are online (group rooms)
    names: new Map(), // user id -> name, of the authors shown (to say who reacted)
    permissions: "", // what the user may do to messages, to refill them when it changes
  };
}
let view = newView(GLOBAL_ROOM_ID);

const api = createApi(() => session?.token ?? null);
const selfId = () => session?.userId ?? "";
const presence = new Presence();
const typing = new TypingState((roomId) => typingChanged(roomId));
const typingSender = new TypingSender((roomId) => {
  if (socket && socket.connected) socket.emit("typing", { room: roomId });
});
const receipts = new Receipts((roomId) => {
  if (roomId === view.roomId) renderSeen();
});
const rooms = new RoomList({
  list: ui.roomList,
  template: ui.roomTemplate,
  selfId,
  selfName: () => session?.name ?? "",
  onSelect: (id) => openRoom(id),
  presenceOf: (userId) => presence.get(userId),
  typingOf: (roomId) => typingText(typing.names(roomId)),
});
const dialogs = setupDialogs({
  api,
  rooms,
  presence,
  selfId,
  activeRoom: () => rooms.get(view.roomId),
  openRoom: (id) => openRoom(id),
  expired: () => signOut(EXPIRED),
  refreshRoom: (id) => refreshRoomSoon(id),
});
const marker = new ReadMarker({ api, rooms, seeing: () => seeing(), expired: () => signOut(EXPIRED) });
presence.onChange((ids) => presenceChanged(ids));

// ---- session ----------------------------------------------------------------------------

function loadSession() {
  try {
    const raw = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (raw && typeof raw.token === "string" && raw.token && raw.userId != null) {
      return { token: raw.token, userId: String(raw.userId), name: String(raw.name ?? "") };
    }
  } catch {
    /* corrupt entry: treat as signed out */
  }
  return null;
}

function saveSession(value) {
  session = value;
  if (value) localStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else localStorage.removeItem(SESSION_KEY);
}

function signOut(notice, { clearStorage = true } = {}) {
  generation += 1;
  if (socket) {
    socket.disconnect();
    socket.removeAllListeners();
    socket = null;
  }
  if (clearStorage) saveSession(null);
  else session = null;
  dialogs.closeAll();
  for (const timer of refreshTimers.values()) clearTimeout(timer);
  refreshTimers.clear();
  clearTimeout(recountTimer);
  clearTimeout(onlineTimer);
  recountTimer = null;
  onlineTimer = null;
  cursor = null;
  pendingSend = null;
  composing = null;
  drafts.clear();
  marker.reset();
  presence.reset();
  typing.clear();
  typingSender.reset();
  receipts.reset();
  rooms.reset();
  resetView(GLOBAL_ROOM_ID);
  ui.input.value = "";
  setError(ui.sendError, "");
  setStatus("offline");
  showAuth(notice);
}

function showAuth(notice) {
  show(ui.chatView, false);
  show(ui.session, false);
  show(ui.authView, true);
  ui.signinNotice.textContent = notice || "";
  show(ui.signinNotice, Boolean(notice));
  document.title = "Chat";
}

async function enterChat() {
  const gen = generation;
  show(ui.authView, false);
  show(ui.chatView, true);
  show(ui.session, true);
  ui.currentUser.textContent = session.name;
  ui.currentUser.title = `Signed in as ${session.name}`;
  document.title = `Chat · ${session.name}`;
  setStatus("connecting");
  cursor = null;
  rooms.reset();
  setRoomsState("loading");
  setPane("room");
  resetView(GLOBAL_ROOM_ID);
  const page = await loadHistory();
  if (gen !== generation) return; // signed out meanwhile (a refused token, say)
  // The first connection asks for what was posted after the newest message shown; the
  // room list, loaded once connected, covers everything before.
  if (cursor === null && Array.isArray(page)) {
    for (const msg of page) if (msg && isId(msg._id)) cursor = maxId(cursor, String(msg._id));
  }
  connectSocket();
  ui.input.focus();
}

// ---- the room list --------------------------------------------------------------------------

/** "loading" (until the first list arrives), "ready", or an error text with a retry. */
function setRoomsState(state, error = "") {
  show(ui.roomsLoading, state === "loading");
  show(ui.roomsErrorBox, state === "error");
  ui.roomsError.textContent = state === "error" ? error : "";
}

/**
 * Load the user's rooms (`GET /rooms`) with their unread counts: whenever the page
 * (re)connects (read markers are not replayed), when the gateway could not replay what a
 * reconnecting page missed, and when a marker moved to where the list cannot count.
 */
async function loadRooms() {
  const gen = generation;
  const ticket = rooms.beginLoad();
  if (!rooms.loaded) setRoomsState("loading");
  let data;
  try {
    data = await api("GET", "/rooms");
  } catch (err) {
    if (gen !== generation) return;
    rooms.endLoad(ticket, null);
    if (isUnauthorized(err)) return signOut(EXPIRED);
    setRoomsState("error", `Could not load your rooms: ${describeError(err)}`);
    return;
  }
  if (gen !== generation) return;
  rooms.endLoad(ticket, Array.isArray(data) ? data : Array.isArray(data?.rooms) ? data.rooms : []);
  setRoomsState("ready");
  if (!view.gone && !rooms.has(view.roomId)) roomGone(view.roomId, "unavailable");
  else renderHeader();
  marker.note();
}

/** A marker moved to where the list cannot count what is left unread: ask the server. */
function recountSoon() {
  if (recountTimer !== null) return;
  recountTimer = setTimeout(() => {
    recountTimer = null;
    loadRooms();
  }, RECOUNT_DELAY_MS);
}

/**
 * Presence is state the page reads after it connects: the other person of the most
 * recent direct rooms (for the list's dots) and the open room. Events keep it current.
 */
async function loadPresence() {
  const gen = generation;
  loadRoomPresence();
  const direct = rooms
    .ordered()
    .filter((room) => room.kind === "direct" && room.peer)
    .slice(0, DIRECT_PRESENCE_ROOMS);
  for (const room of direct) {
    if (gen !== generation) return;
    if (room.id !== view.roomId) await presence.load(api, room.id, 2);
  }
}

/** The open room's presence: the other person of a direct room, or a group's online count. */
async function loadRoomPresence() {
  const { roomId, ticket } = view;
  const room = rooms.get(roomId);
  if (view.gone || !room) return;
  const data = await presence.load(api, roomId, room.kind === "direct" ? 2 : 1);
  if (!data || ticket !== view.ticket) return;
  view.online = Number.isSafeInteger(data.online) ? data.online : null;
  renderHeader();
}

/** Someone's presence changed: the list, the header and the members list show it. */
function presenceChanged(ids) {
  rooms.refresh();
  dialogs.presenceChanged(ids);
  const room = rooms.get(view.roomId);
  if (!room || view.gone) return;
  if (room.kind === "direct") {
    if (room.peer && ids.has(String(room.peer.id))) renderHeader();
  } else if (room.id !== GLOBAL_ROOM_ID && onlineTimer === null && (room.memberCount ?? 0) <= PRESENCE_PUSH_MAX_MEMBERS) {
    onlineTimer = setTimeout(() => {
      onlineTimer = null;
      loadRoomPresence();
    }, ONLINE_COUNT_DELAY_MS);
  }
}

function refreshRoomSoon(roomId) {
  if (roomId === GLOBAL_ROOM_ID || refreshTimers.has(roomId)) return;
  const gen = generation;
  refreshTimers.set(
    roomId,
    setTimeout(async () => {
      refreshTimers.delete(roomId);
      try {
        const room = await api("GET", roomPath(roomId));
        if (gen !== generation) return;
        rooms.refreshed(room);
        dialogs.permissionsChanged(roomId);
        if (roomId === view.roomId) renderHeader();
      } catch {
        /* the header keeps its older count; a removal arrives as its own event */
      }
    }, REFRESH_DELAY_MS),
  );
}

// ---- the room pane --------------------------------------------------------------------------

/** Phone layout: the list or the room ("list" | "room"); wider screens show both. */
function setPane(pane) {
  ui.chatView.dataset.pane = pane;
  if (pane === "room") requestAnimationFrame(() => marker.note()); // the newest message may show now
}

function resetView(roomId) {
  view = newView(roomId);
  const room = rooms.get(roomId);
  if (room) {
    view.readFrom = room.lastRead;
    view.unreadAtOpen = room.unread;
  }
  rooms.setActive(roomId);
  ui.list.replaceChildren();
  setError(ui.historyError, "");
  setError(ui.roomError, "");
  setError(ui.sendError, "");
  show(ui.roomNotice, false);
  show(ui.composer, true);
  renderHeader();
  renderTyping();
  renderComposing();
  updateChrome();
}

/** Show a room: its header, its history, then its live messages. */
function openRoom(roomId) {
  setPane("room");
  if (roomId === view.roomId && !view.gone) {
    ui.input.focus();
    return;
  }
  if (!view.gone) drafts.set(view.roomId, composing?.kind === "edit" ? composing.draft : ui.input.value);
  composing = null;
  resetView(roomId);
  ui.input.value = drafts.get(roomId) ?? "";
  drafts.delete(roomId);
  autosize();
  loadHistory();
  loadRoomPresence();
  loadReceipts();
  ui.input.focus();
}

const KIND_TEXT = { public: "Public room", private: "Private room", direct: "Direct message" };

function renderHeader() {
  const room = rooms.get(view.roomId);
  const global = view.roomId === GLOBAL_ROOM_ID;
  if (room) view.title = roomName(room);
  ui.roomTitle.textContent = view.title || "Room";
  let kind = global ? "Everyone" : room ? KIND_TEXT[room.kind] : "";
  if (room?.archived) kind += " · archived";
  ui.roomKind.textContent = kind;
  const count = room && !global && room.kind !== "direct" ? room.memberCount : null;
  ui.roomCount.textContent = count === null || count === undefined ? "" : `· ${count} member${count === 1 ? "" : "s"}`;
  ui.roomTopic.textContent = room?.topic ? `· ${room.topic}` : "";
  renderRoomPresence(room);
  const usable = Boolean(room) && !global && !view.gone;
  const canAdd = room?.kind === "public" || room?.role === "owner" || room?.role === "admin";
  show(ui.membersButton, usable);
  show(ui.inviteButton, usable && room.kind !== "direct" && !room.archived && canAdd);
  show(ui.leaveButton, usable && room.kind !== "direct");
  const permissions = `${room?.role ?? ""}:${room?.archived ? 1 : 0}:${view.gone ?? ""}`;
  if (permissions !== view.permissions) {
    view.permissions = permissions;
    refillMessages();
  }
}

/** A direct room says whether the other person is online; a group how many members are. */
function renderRoomPresence(room) {
  let text = "";
  let online = "unknown";
  if (room && !view.gone && room.kind === "direct" && room.peer) {
    const state = presence.get(room.peer.id);
    text = describePresence(state);
    if (state) online = String(state.online);
  } else if (room && !view.gone && view.online !== null) {
    text = `${view.online} online`;
  }
  ui.roomPresence.textContent = text ? `· ${text}` : "";
  ui.roomPresence.dataset.online = online;
}

/**
 * The room is no longer the user's (they left or were removed, possibly on another
 * device): it leaves the list, and the pane says so instead of showing its messages.
 */
function roomGone(roomId, reason) {
  if (roomId === GLOBAL_ROOM_ID) return;
  rooms.left(roomId);
  dialogs.roomGone(roomId);
  typing.clear(roomId);
  receipts.forget(roomId);
  if (pendingSend?.roomId === roomId) pendingSend = null;
  drafts.delete(roomId);
  if (roomId !== view.roomId) return;
  composing = null;
  renderComposing();
  const name = view.title ? `“${view.title}”` : "this room";
  view.gone = reason;
  view.ticket = ++viewTickets; // answers still on their way are for a room no longer shown
  view.messages = new Map();
  view.rendered = new Map();
  view.changes = new Map();
  view.seen = new Set();
  view.names = new Map();
  view.divider = null;
  view.hasOlder = false;
  view.loading = false;
  ui.list.replaceChildren();
  ui.input.value = "";
  setError(ui.historyError, "");
  setError(ui.sendError, "");
  setError(ui.roomError, "");
  ui.roomNotice.dataset.reason = reason;
  ui.roomNoticeText.textContent =
    reason === "removed"
      ? `You were removed from ${name}. You no longer receive its messages.`
      : reason === "left"
        ? `You left ${name}.`
        : `${name.charAt(0).toUpperCase()}${name.slice(1)} is not available to you any more.`;
  show(ui.roomNotice, true);
  show(ui.composer, false);
  renderHeader();
  updateChrome();
}

async function leaveRoom() {
  const room = rooms.get(view.roomId);
  if (!room || room.id === GLOBAL_ROOM_ID || room.kind === "direct") return;
  const name = roomName(room);
  const again = room.kind === "private" ? " You can only come back if someone adds you." : "";
  if (!(await dialogs.confirm(`Leave “${name}”?${again}`, "Leave"))) return;
  const gen = generation;
  setError(ui.roomError, "");
  ui.leaveButton.disabled = true;
  try {
    await api("POST", roomPath(room.id, "/leave"));
    if (gen !== generation) return;
    rooms.left(room.id);
    dialogs.roomGone(room.id);
    drafts.delete(room.id);
    if (view.roomId === room.id) openRoom(GLOBAL_ROOM_ID);
  } catch (err) {
    if (gen !== generation) return;
    if (isUnauthorized(err)) return signOut(EXPIRED);
    setError(ui.roomError, `Could not leave ${name}: ${describeError(err)}`);
  } finally {
    ui.leaveButton.disabled = false;
  }
}

// ---- rendering messages -----------------------------------------------------------------------

function isNearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

/** What the user may do to messages of the open room (docs/ROOM_STATE.md). */
function messageOptions(msg) {
  const room = rooms.get(view.roomId);
  const own = String(msg.owner ?? "") === selfId();
  const usable = Boolean(room) && !view.gone;
  const writable = usable && !room.archived;
  const admin = usable && room.id !== GLOBAL_ROOM_ID && (room.role === "owner" || room.role === "admin");
  return { selfId: selfId(), canEdit: own && writable, canDelete: usable && (own || admin), canReact: writable, names: namesOf };
}

/** Who reacted, by name where the page knows it (authors of the shown messages). */
function namesOf(userIds) {
  const peer = rooms.get(view.roomId)?.peer;
  const nameOf = (id) => (id === selfId() ? "You" : view.names.get(id) ?? (peer?.id === id ? peer.name : "someone"));
  return userIds.map(nameOf).join(", ");
}

function renderMessage(msg) {
  const li = createMessageItem(ui.template);
  fillMessage(li, msg, messageOptions(msg));
  return li;
}

/** Draw a shown message again after it changed. */
function refill(id) {
  const li = view.rendered.get(id);
  const msg = view.messages.get(id);
  if (li && msg) fillMessage(li, msg, messageOptions(msg));
}

function refillMessages() {
  for (const id of view.rendered.keys()) refill(id);
}

function validMessage(msg) {
  return msg && typeof msg === "object" && isId(msg._id) && typeof msg.text === "string";
}

function sortedIds() {
  return [...view.messages.keys()].sort(compareIds);
}

function newestId() {
  let best = null;
  for (const id of view.messages.keys()) if (best === null || compareIds(id, best) > 0) best = id;
  return best;
}

function oldestId() {
  let best = null;
  for (const id of view.messages.keys()) if (best === null || compareIds(id, best) < 0) best = id;
  return best;
}

/**
 * Merge messages of the active room from any source: de-duplicated by `_id`, inserted in
 * numeric `_id` order. scroll: "bottom" | "keep" (prepending older) | "auto" (follow if
 * at bottom). fresh: the messages come from a REST answer, as they are now, so ones
 * already shown take their state (an edit or reaction the page missed); a live event
 * or a POST answer never replaces what is shown.
 */
function addMessages(list, { scroll = "auto", fresh = false } = {}) {
  if (!Array.isArray(list)) list = [list];
  const wasNearBottom = isNearBottom();
  const beforeHeight = ui.scroller.scrollHeight;
  const beforeTop = ui.scroller.scrollTop;
  let added = 0;
  for (const raw of list) {
    if (!validMessage(raw)) continue;
    let msg = normalizeMessage(raw);
    const known = view.messages.get(msg._id);
    if (known && (!fresh || known.deleted)) continue;
    const early = view.changes.get(msg._id);
    if (early) {
      msg = applyChange(msg, early);
      view.changes.delete(msg._id);
    }
    view.messages.set(msg._id, msg);
    if (msg.userName && !msg.deleted) view.names.set(String(msg.owner ?? ""), String(msg.userName));
    if (known) refill(msg._id);
    else added += 1;
  }
  if (!added) {
    updateChrome();
    if (fresh) renderSeen();
    return 0;
  }
  // Insert each new node before the first rendered node with a larger _id.
  const ids = sortedIds();
  let next = null;
  for (let i = ids.length - 1; i >= 0; i -= 1) {
    const id = ids[i];
    let li = view.rendered.get(id);
    if (!li) {
      li = renderMessage(view.messages.get(id));
      view.rendered.set(id, li);
      ui.list.insertBefore(li, next === view.divider?.nextElementSibling ? view.divider : next);
    }
    next = li;
  }
  renderSeen();
  updateChrome();
  if (scroll === "bottom" || (scroll === "auto" && wasNearBottom)) scrollToBottom();
  else if (scroll === "keep") ui.scroller.scrollTop = beforeTop + (ui.scroller.scrollHeight - beforeHeight);
  marker.note();
  return added;
}

/**
 * An edit, deletion or reaction change of a message in `roomId` (an event, or the page's
 * own request). A message the open room does not show yet keeps its change for when its
 * history arrives.
 */
function changeMessage(roomId, id, change) {
  rooms.messageChanged(roomId, id, change);
  if (roomId !== view.roomId || view.gone) return;
  const msg = view.messages.get(id);
  if (!msg) {
    const early = view.changes.get(id);
    view.changes.set(id, early ? mergeChanges(early, change) : change);
    if (view.changes.size > KEPT_CHANGES) view.changes.delete(view.changes.keys().next().value);
    return;
  }
  const wasNearBottom = isNearBottom();
  view.messages.set(id, applyChange(msg, change));
  refill(id);
  if (change.deleted) {
    // Its text survives nowhere: replies to it lose their excerpt too.
    for (const [otherId, other] of view.messages) {
      if (other.replyTo?._id === id && other.replyTo.excerpt) {
        view.messages.set(otherId, { ...other, replyTo: { ...other.replyTo, excerpt: "" } });
        refill(otherId);
      }
    }
    if (composing && composing.roomId === roomId && composing.id === id) endComposing();
    renderSeen();
  }
  if (wasNearBottom) scrollToBottom();
}

/** Place "New messages" where the unread messages began when the room opened. */
function placeDivider() {
  if (view.divider) return;
  const messages = sortedIds().map((id) => view.messages.get(id));
  const before = dividerBefore(messages, view.readFrom, view.unreadAtOpen, selfId());
  const li = before ? view.rendered.get(before) : null;
  if (!li) return;
  view.divider = ui.dividerTemplate.content.firstElementChild.cloneNode(true);
  ui.list.insertBefore(view.divider, li);
}

/** Scroll the divider into sight when the newest messages would hide it. */
function revealDivider() {
  if (!view.divider) return;
  const top = view.divider.getBoundingClientRect().top - ui.scroller.getBoundingClientRect().top;
  if (top < 0) ui.scroller.scrollTop += top - 8;
}

/** The "Seen" lines of the open room, from the receipts of its other members. */
function renderSeen() {
  const wanted = new Map();
  const room = rooms.get(view.roomId);
  if (showsReceipts(room) && !view.gone) {
    const messages = sortedIds().map((id) => view.messages.get(id));
    for (const [id, readers] of seenMarks(messages, receipts.readers(view.roomId), selfId())) {
      wanted.set(id, room.kind === "direct" ? "Seen" : `Seen by ${readers}`);
    }
  }
  for (const id of view.seen) {
    if (!wanted.has(id)) {
      const li = view.rendered.get(id);
      if (li) setSeen(li, "");
    }
  }
  view.seen = new Set();
  for (const [id, label] of wanted) {
    const li = view.rendered.get(id);
    if (!li) continue;
    setSeen(li, label);
    view.seen.add(id);
  }
}

/** The open room's receipts (direct rooms, and group rooms that show them). */
async function loadReceipts() {
  const roomId = view.roomId;
  if (view.gone || !showsReceipts(rooms.get(roomId))) return;
  await receipts.load(api, roomId);
}

/** Whether the user sees the newest message of the open room: `{roomId, newest}` or null. */
function seeing() {
  if (!session || view.gone || view.loading) return null;
  if (document.visibilityState !== "visible") return null;
  if (ui.scroller.getClientRects().length === 0) return null; // the phone shows the list
  if (!isNearBottom()) return null;
  const newest = newestId();
  return newest ? { roomId: view.roomId, newest } : null;
}

function updateChrome() {
  const size = view.messages.size;
  show(ui.loadOlder, view.hasOlder && !view.gone);
  show(ui.historyStart, !view.hasOlder && size > 0);
  show(ui.empty, size === 0 && !view.loading && !view.gone);
  ui.scroller.setAttribute("aria-busy", view.loading ? "true" : "false");
}

// ---- history -----------------------------------------------------------------------------

/** A REST failure for the open room: sign out, the room is gone, or show `what` failed. */
function historyFailed(err, what) {
  if (isUnauthorized(err)) return signOut(EXPIRED);
  if (isNoAccess(err)) return roomGone(view.roomId, "unavailable");
  setError(ui.historyError, `${what}: ${describeError(err)}`);
}

/** The open room's newest page; returns it (or undefined when it failed or is stale). */
async function loadHistory() {
  const { roomId, ticket } = view;
  const gen = generation;
  const current = () => gen === generation && ticket === view.ticket;
  view.loading = true;
  updateChrome();
  try {
    const page = await api("GET", roomPath(roomId, `/messages?limit=${PAGE_SIZE}`));
    if (!current()) return undefined;
    view.loading = false;
    view.hasOlder = Array.isArray(page) && page.length >= PAGE_SIZE;
    addMessages(Array.isArray(page) ? page : [], { scroll: "bottom", fresh: true });
    placeDivider();
    revealDivider();
    marker.note();
    return page;
  } catch (err) {
    if (!current()) return undefined;
    view.loading = false;
    updateChrome();
    historyFailed(err, "Could not load messages");
    return undefined;
  }
}

async function loadOlder() {
  const oldest = oldestId();
  if (!oldest) return;
  const { roomId, ticket } = view;
  const gen = generation;
  ui.loadOlder.disabled = true;
  ui.loadOlder.setAttribute("aria-busy", "true");
  setError(ui.historyError, "");
  try {
    const page = await api("GET", roomPath(roomId, `/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(oldest)}`));
    if (gen !== generation || ticket !== view.ticket) return;
    view.hasOlder = Array.isArray(page) && page.length >= PAGE_SIZE;
    addMessages(Array.isArray(page) ? page : [], { scroll: "keep", fresh: true });
  } catch (err) {
    if (gen !== generation || ticket !== view.ticket) return;
    historyFailed(err, "Could not load older messages");
  } finally {
    ui.loadOlder.disabled = false;
    ui.loadOlder.removeAttribute("aria-busy");
  }
}

/** Fetch the open room's messages after the newest one shown (the gateway could not replay them). */
async function catchUp() {
  if (view.gone) return;
  const { roomId, ticket } = view;
  const gen = generation;
  let after = newestId();
  if (!after) {
    if (!view.loading) await loadHistory();
    return;
  }
  for (let pages = 0; pages < 100; pages += 1) {
    let page;
    try {
      page = await api("GET", roomPath(roomId, `/messages?limit=${CATCH_UP_PAGE}&after=${encodeURIComponent(after)}`));
    } catch (err) {
      if (gen !== generation || ticket !== view.ticket) return;
      historyFailed(err, "Could not fetch missed messages");
      return;
    }
    if (gen !== generation || ticket !== view.ticket || !Array.isArray(page)) return;
    addMessages(page, { fresh: true });
    if (page.length < CATCH_UP_PAGE) break;
    after = String(page[page.length - 1]._id);
  }
  // Edits, deletions and reactions the gateway could not replay: the newest page as it is now.
  try {
    const page = await api("GET", roomPath(roomId, `/messages?limit=${PAGE_SIZE}`));
    if (gen === generation && ticket === view.ticket && Array.isArray(page)) addMessages(page, { fresh: true });
  } catch {
    /* the messages stay as they were shown; the next change of each brings it up to date */
  }
}

// ---- live connection ------------------------------------------------------------------------

const STATUS_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.statusLabel.textContent = STATUS_TEXT[state];
  ui.status.setAttribute("aria-label", `Connection: ${STATUS_TEXT[state]}`);
}

/** Every event but `recovered` carries an `_id` of the one sequence: keep the largest. */
function advance(payload) {
  if (payload && isId(payload._id)) cursor = maxId(cursor, String(payload._id));
}

function connectSocket() {
  if (typeof window.io !== "function") {
    setStatus("offline");
    setError(ui.historyError, "The real-time client failed to load; reload the page.");
    return;
  }
  const gen = generation;
  // `auth` is a function so every (re)connection sends the cursor as it is then; the
  // gateway replays what we missed in all our rooms (or tells us to refetch over REST).
  socket = window.io(window.location.origin, {
    auth: (cb) => {
      const auth = { token: session?.token, rooms: true };
      if (cursor !== null) auth.lastId = cursor;
      cb(auth);
    },
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  const manager = socket.io;
  const live = (handler) => (payload) => {
    if (gen === generation && payload && typeof payload === "object") handler(payload);
  };

  socket.on("connect", async () => {
    setStatus("live");
    setError(ui.historyError, "");
    // Read markers, receipts and presence are not replayed: read them as they are now.
    await loadRooms();
    if (gen !== generation) return;
    loadPresence();
    loadReceipts();
  });
  socket.on("disconnect", (reason) => {
    if (gen !== generation) return;
    if (reason === "io client disconnect") {
      setStatus("offline");
    } else if (reason === "io server disconnect") {
      // The server closed us on purpose (e.g. draining): come back, through the LB.
      setStatus("reconnecting");
      setTimeout(() => gen === generation && socket && socket.connect(), 500);
    } else {
      setStatus(navigator.onLine === false ? "offline" : "reconnecting");
    }
  });
  socket.on("connect_error", (err) => {
    if (gen !== generation) return;
    const text = String(err && err.message ? err.message : err);
    if (/unauthori[sz]ed/i.test(text)) {
      signOut(EXPIRED);
      return;
    }
    // socket.active: the client keeps retrying by itself.
    setStatus(socket && socket.active ? "reconnecting" : "offline");
  });
  manager.on("reconnect_attempt", () => {
    if (gen === generation) setStatus("reconnecting");
  });
  manager.on("reconnect_failed", () => {
    if (gen === generation) setStatus("offline");
  });

  socket.on("message", live(onMessage));
  socket.on("roomJoined", live(onRoomJoined));
  socket.on("roomLeft", live(onRoomLeft));
  socket.on("roomUpdated", live(onRoomUpdated));
  socket.on("memberChanged", live(onMemberChanged));
  socket.on("recovered", live(onRecovered));
  socket.on("messageEdited", live(onMessageEdited));
  socket.on("messageDeleted", live(onMessageDeleted));
  socket.on("reactionsChanged", live(onReactionsChanged));
  socket.on("readUpdated", live(onReadUpdated));
  socket.on("receipts", live(onReceipts));
  socket.on("presence", live((event) => presence.event(event)));
  socket.on("typing", live((event) => typing.received(event, selfId())));
}

function onMessage(msg) {
  if (!validMessage(msg)) return;
  advance(msg);
  const roomId = typeof msg.room === "string" ? msg.room : GLOBAL_ROOM_ID;
  const open = roomId === view.roomId && !view.gone;
  rooms.message(msg, roomId, { seen: open && seeing() !== null });
  typing.stopped(roomId, String(msg.owner ?? ""));
  if (open) addMessages([msg]);
}

function onMessageEdited(event) {
  advance(event);
  const msg = event.message;
  if (typeof event.room !== "string" || !msg || !isId(msg._id) || typeof msg.text !== "string") return;
  changeMessage(event.room, String(msg._id), { text: msg.text, edited: msg.edited });
}

function onMessageDeleted(event) {
  advance(event);
  if (typeof event.room !== "string" || !isId(event.message)) return;
  changeMessage(event.room, String(event.message), { deleted: true });
}

function onReactionsChanged(event) {
  advance(event);
  if (typeof event.room !== "string" || !isId(event.message) || !Array.isArray(event.reactions)) return;
  changeMessage(event.room, String(event.message), { reactions: event.reactions });
}

/** The user's marker moved (on this device or another): the counts follow. */
function onReadUpdated(event) {
  if (typeof event.room !== "string" || !isId(event.lastRead)) return;
  if (!rooms.read(event.room, String(event.lastRead))) recountSoon();
}

function onReceipts(event) {
  receipts.merge(event.room, event.readers);
}

/** Who types in a room changed: the list's line, and the open room's indicator. */
function typingChanged(roomId) {
  rooms.refresh();
  if (roomId === view.roomId) renderTyping();
}

/** Whether the gateway relays typing in `room`: not in the global room, nor in a very large one. */
function showsTyping(room) {
  return Boolean(room) && !view.gone && room.id !== GLOBAL_ROOM_ID && (room.memberCount ?? 0) <= TYPING_MAX_MEMBERS;
}

function renderTyping() {
  const text = view.gone ? "" : typingText(typing.names(view.roomId));
  ui.typing.textContent = text;
  ui.typing.hidden = !text;
}

function onRoomJoined(event) {
  advance(event);
  const room = event.room;
  if (!room || typeof room.id !== "string") return;
  rooms.joined(room, event._id);
  // A new direct room: whether its other person is online (events tell the changes).
  if (room.kind === "direct" && room.peer && !presence.get(room.peer.id)) presence.load(api, room.id, 2);
  if (room.id !== view.roomId) return;
  if (view.gone) {
    openRoom(room.id); // added back while looking at the notice: show the room again
  } else {
    renderHeader();
  }
}

function onRoomLeft(event) {
  advance(event);
  if (typeof event.room !== "string") return;
  roomGone(event.room, event.reason === "left" ? "left" : "removed");
}

function onRoomUpdated(event) {
  advance(event);
  if (!event.room || typeof event.room.id !== "string") return;
  rooms.updated(event.room);
  if (event.room.id !== view.roomId) return;
  renderHeader();
  if (typeof event.room.receipts === "boolean") {
    if (event.room.receipts) loadReceipts();
    renderSeen();
  }
}

function onMemberChanged(event) {
  advance(event);
  const roomId = event.room;
  const user = event.user;
  if (typeof roomId !== "string" || !user || user.id == null) return;
  const role = event.role ?? null;
  if (String(user.id) === selfId() && role !== null) {
    rooms.roleChanged(roomId, role);
    dialogs.permissionsChanged(roomId);
  }
  dialogs.memberChanged(roomId, user, role);
  if (roomId === view.roomId) {
    renderHeader();
    refreshRoomSoon(roomId); // the member count
  }
}

function onRecovered(info) {
  if (info.recovered === true) {
    // Replayed up to info.lastId: nothing of our rooms up to there is missing.
    if (isId(info.lastId)) cursor = maxId(cursor, String(info.lastId));
    return;
  }
  // The gap is older than the history stream: the room list and the open room are
  // fetched again over REST (`refetch` names the rooms with messages in the gap; the
  // list's newest messages and memberships come with the list).
  loadRooms();
  const refetch = Array.isArray(info.refetch) ? info.refetch : null;
  if (refetch === null || refetch.includes(view.roomId)) catchUp();
}

window.addEventListener("offline", () => {
  if (socket) setStatus("offline");
});
window.addEventListener("online", () => {
  if (socket && !socket.connected) {
    setStatus("reconnecting");
    socket.connect();
  }
});

// ---- sending -------------------------------------------------------------------------------

async function sendMessage(roomId, text, replyTo = null) {
  const gen = generation;
  // Same text after a failure: the same client id, so the server stores it at most once.
  if (!pendingSend || pendingSend.text !== text || pendingSend.roomId !== roomId || pendingSend.replyTo !== replyTo) {
    pendingSend = { roomId, id: crypto.randomUUID(), text, replyTo };
  }
  const attempt = pendingSend;
  for (let tries = 0; ; tries += 1) {
    try {
      const body = { id: attempt.id, text: attempt.text };
      if (attempt.replyTo) body.replyTo = attempt.replyTo;
      const stored = await api("POST", roomPath(roomId, "/messages"), { body });
      if (gen !== generation) return false;
      if (pendingSend === attempt) pendingSend = null;
      rooms.message(stored, roomId);
      typingSender.sent(roomId);
      if (roomId === view.roomId && !view.gone) addMessages([stored], { scroll: "bottom" });
      return true;
    } catch (err) {
      if (gen !== generation) return false;
      const transient = err instanceof NetworkError || (err instanceof ApiError && [502, 503, 504].includes(err.status));
      if (transient && tries < SEND_RETRIES) {
        setError(ui.sendError, `${describeError(err)} Retrying…`);
        await delay(500 * 2 ** tries);
        if (gen !== generation) return false;
        continue;
      }
      if (isUnauthorized(err)) {
        signOut(EXPIRED);
        return false;
      }
      if (!transient) pendingSend = null; // rejected for good: a new attempt is a new message
      if (isNoAccess(err)) {
        roomGone(roomId, "unavailable");
        return false;
      }
      setError(ui.sendError, transient ? `${describeError(err)} Press Send to try again.` : describeError(err));
      return false;
    }
  }
}

/** Save an edit of the user's message: `PATCH`, and the page shows the answer at once. */
async function saveEdit(roomId, id, text) {
  const gen = generation;
  try {
    const stored = await api("PATCH", roomPath(roomId, `/messages/${encodeURIComponent(id)}`), { body: { text } });
    if (gen !== generation) return false;
    if (stored && typeof stored.text === "string") changeMessage(roomId, id, { text: stored.text, edited: stored.edited });
    return true;
  } catch (err) {
    if (gen !== generation) return false;
    if (isUnauthorized(err)) signOut(EXPIRED);
    else setError(ui.sendError, `Could not save the edit: ${describeError(err)}`);
    return false;
  }
}

let sending = false;
async function submitComposer(event) {
  event.preventDefault();
  if (sending || view.gone) return;
  const text = ui.input.value;
  if (!text.trim()) {
    ui.input.focus();
    return;
  }
  const roomId = view.roomId;
  const mode = composing && composing.roomId === roomId ? composing : null;
  sending = true;
  ui.send.disabled = true;
  ui.composer.setAttribute("aria-busy", "true");
  setError(ui.sendError, "");
  try {
    const ok =
      mode?.kind === "edit" ? await saveEdit(roomId, mode.id, text) : await sendMessage(roomId, text, mode?.kind === "reply" ? mode.id : null);
    if (ok) {
      if (roomId === view.roomId) {
        setError(ui.sendError, "");
        if (composing === mode && mode) {
          endComposing({ sent: true });
        } else if (ui.input.value === text) {
          ui.input.value = "";
        }
        autosize();
      } else if (drafts.get(roomId) === text) {
        drafts.delete(roomId); // sent after the user switched rooms: not a draft any more
      }
    }
  } finally {
    sending = false;
    ui.send.disabled = false;
    ui.composer.removeAttribute("aria-busy");
    if (!view.gone) ui.input.focus();
  }
}

// ---- replying, editing, deleting and reacting ------------------------------------------------

/** Reply to a message of the open room: the composer says to which. */
function startReply(id) {
  const msg = view.messages.get(id);
  if (!msg || msg.deleted) return;
  if (composing?.kind === "edit") endComposing();
  composing = { kind: "reply", roomId: view.roomId, id };
  renderComposing();
  ui.input.focus();
}

/** Edit one of the user's messages in the composer (what it held comes back afterwards). */
function startEdit(id) {
  const msg = view.messages.get(id);
  if (!msg || msg.deleted) return;
  const draft = composing?.kind === "edit" ? composing.draft : ui.input.value;
  composing = { kind: "edit", roomId: view.roomId, id, draft };
  ui.input.value = htmlToText(msg.text);
  renderComposing();
  autosize();
  ui.input.focus();
  ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
}

/**
 * Back to writing a new message. After an edit (saved or not) the box gets its draft
 * back; a sent reply empties it, a cancelled one keeps what was typed.
 */
function endComposing({ sent = false } = {}) {
  const mode = composing;
  composing = null;
  if (mode?.kind === "edit") ui.input.value = mode.draft;
  else if (mode?.kind === "reply" && sent) ui.input.value = "";
  renderComposing();
  autosize();
}

function renderComposing() {
  const mode = composing && composing.roomId === view.roomId ? composing : null;
  const msg = mode ? view.messages.get(mode.id) : null;
  show(ui.context, Boolean(msg));
  ui.composer.dataset.mode = msg ? mode.kind : "post";
  ui.send.textContent = msg && mode.kind === "edit" ? "Save" : "Send";
  if (!msg) return;
  ui.context.dataset.mode = mode.kind;
  ui.context.dataset.messageId = mode.id;
  if (mode.kind === "edit") {
    ui.contextLabel.textContent = "Editing your message";
    ui.contextExcerpt.textContent = "";
  } else {
    const own = String(msg.owner ?? "") === selfId();
    ui.contextLabel.textContent = `Replying to ${own ? "yourself" : msg.userName || "Unknown"}`;
    ui.contextExcerpt.textContent = excerptOf(msg);
  }
}

async function deleteMessage(id) {
  const msg = view.messages.get(id);
  if (!msg || msg.deleted) return;
  const own = String(msg.owner ?? "") === selfId();
  const question = own ? "Delete your message? Everyone in the room sees that it was deleted." : `Delete this message by ${msg.userName || "someone"}?`;
  if (!(await dialogs.confirm(question, "Delete"))) return;
  const roomId = view.roomId;
  const gen = generation;
  setError(ui.roomError, "");
  try {
    await api("DELETE", roomPath(roomId, `/messages/${encodeURIComponent(id)}`));
    if (gen === generation) changeMessage(roomId, id, { deleted: true });
  } catch (err) {
    if (gen !== generation) return;
    if (isUnauthorized(err)) signOut(EXPIRED);
    else setError(ui.roomError, `Could not delete the message: ${describeError(err)}`);
  }
}

/** Add or take back the user's reaction: shown at once, confirmed by `reactionsChanged`. */
async function toggleReaction(id, emoji) {
  const msg = view.messages.get(id);
  if (!msg || msg.deleted) return;
  const roomId = view.roomId;
  const gen = generation;
  const had = reactedWith(msg, emoji, selfId());
  changeMessage(roomId, id, { reactions: toggledReactions(msg.reactions, emoji, selfId()) });
  setError(ui.roomError, "");
  try {
    const path = roomPath(roomId, `/messages/${encodeURIComponent(id)}/reactions/${encodeURIComponent(emoji)}`);
    await api(had ? "DELETE" : "PUT", path);
  } catch (err) {
    if (gen !== generation) return;
    if (isUnauthorized(err)) return signOut(EXPIRED);
    const now = view.roomId === roomId ? view.messages.get(id) : null;
    if (now && reactedWith(now, emoji, selfId()) !== had) {
      changeMessage(roomId, id, { reactions: toggledReactions(now.reactions, emoji, selfId()) });
    }
    setError(ui.roomError, `Could not ${had ? "remove" : "add"} the reaction: ${describeError(err)}`);
  }
}

/** The quoted message of a reply: scroll to it if it is shown. */
function showOriginal(id) {
  const li = view.rendered.get(id);
  if (!li) return;
  li.scrollIntoView({ block: "center" });
  li.classList.remove("flash");
  void li.offsetWidth; // restart the highlight
  li.classList.add("flash");
}

/** Every button of a message carries `data-action`; one listener serves them all. */
function onMessageAction(event) {
  const button = event.target.closest("[data-action]");
  const li = event.target.closest(".message");
  if (!li || !ui.list.contains(li)) return;
  if (!button) {
    // A tap on a message shows its actions where there is no hover (phones).
    if (!NO_HOVER.matches) return;
    for (const other of ui.list.querySelectorAll(".message.selected")) if (other !== li) other.classList.remove("selected");
    li.classList.toggle("selected");
    return;
  }
  const id = li.dataset.id;
  switch (button.dataset.action) {
    case "reply":
      startReply(id);
      break;
    case "edit":
      startEdit(id);
      break;
    case "delete":
      deleteMessage(id);
      break;
    case "pick":
      togglePicker(li);
      break;
    case "react":
      closePicker(li);
      toggleReaction(id, button.dataset.emoji);
      break;
    case "show-original":
      showOriginal(button.dataset.replyTo);
      break;
    default:
      break;
  }
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

// ---- forms ---------------------------------------------------------------------------------

function validateSignup({ name, email, password }) {
  const trimmed = name.trim();
  if (trimmed.length < 2 || trimmed.length > 30) return "Name must be 2 to 30 characters.";
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.trim())) return "Enter a valid email address.";
  if (password.length < 8) return "Password must be at least 8 characters.";
  return "";
}

async function withBusy(form, fn) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await fn();
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

ui.signupForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(ui.signupForm));
  const values = { name: String(data.name || ""), email: String(data.email || ""), password: String(data.password || "") };
  const problem = validateSignup(values);
  setError(ui.signupError, problem);
  if (problem) return;
  withBusy(ui.signupForm, async () => {
    try {
      await api("POST", "/signup", { body: { name: values.name.trim(), email: values.email.trim(), password: values.password }, auth: false });
    } catch (err) {
      setError(ui.signupError, describeError(err));
      return;
    }
    ui.signupForm.reset();
    ui.signinForm.elements.email.value = values.email.trim();
    ui.signinForm.elements.password.value = "";
    ui.signinNotice.textContent = "Account created. Sign in with your password.";
    show(ui.signinNotice, true);
    ui.signinForm.elements.password.focus();
  });
});

ui.signinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(ui.signinForm));
  const email = String(data.email || "").trim();
  const password = String(data.password || "");
  if (!email || !password) {
    setError(ui.signinError, "Enter your email and password.");
    return;
  }
  setError(ui.signinError, "");
  withBusy(ui.signinForm, async () => {
    let reply;
    try {
      reply = await api("POST", "/signin", { body: { email, password }, auth: false });
    } catch (err) {
      setError(ui.signinError, describeError(err));
      return;
    }
    if (!reply || typeof reply.token !== "string") {
      setError(ui.signinError, "Unexpected answer from the server.");
      return;
    }
    saveSession({ token: reply.token, userId: String(reply.userId), name: String(reply.name ?? "") });
    ui.signinForm.reset();
    show(ui.signinNotice, false);
    enterChat();
  });
});

ui.signout.addEventListener("click", () => signOut());
ui.loadOlder.addEventListener("click", loadOlder);
ui.composer.addEventListener("submit", submitComposer);
ui.input.addEventListener("input", () => {
  autosize();
  if (!ui.sendError.hidden && pendingSend === null) setError(ui.sendError, "");
  if (ui.input.value.trim() && composing?.kind !== "edit" && showsTyping(rooms.get(view.roomId))) typingSender.typed(view.roomId);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  } else if (event.key === "Escape" && composing) {
    event.preventDefault();
    endComposing();
  }
});
ui.contextCancel.addEventListener("click", () => {
  endComposing();
  ui.input.focus();
});
ui.list.addEventListener("click", onMessageAction);
// A click anywhere else closes an open emoji picker.
document.addEventListener("click", (event) => {
  for (const li of ui.list.querySelectorAll(".message.picking")) if (!li.contains(event.target)) closePicker(li);
});
ui.list.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const li = event.target.closest(".message");
  if (li) {
    closePicker(li);
    li.querySelector('[data-action="pick"]')?.focus();
  }
});
// The read marker moves once the user sees the newest message.
ui.scroller.addEventListener("scroll", () => marker.note(), { passive: true });
document.addEventListener("visibilitychange", () => marker.note());

ui.roomsRetry.addEventListener("click", () => loadRooms());
ui.createRoom.addEventListener("click", () => dialogs.openCreate());
ui.browseRooms.addEventListener("click", () => dialogs.openBrowse());
ui.newDirect.addEventListener("click", () => dialogs.openPeople("direct"));
ui.inviteButton.addEventListener("click", () => dialogs.openPeople("invite"));
ui.membersButton.addEventListener("click", () => dialogs.openMembers());
ui.leaveButton.addEventListener("click", leaveRoom);
ui.roomNoticeAction.addEventListener("click", () => openRoom(GLOBAL_ROOM_ID));
ui.back.addEventListener("click", () => {
  setPane("list");
  ui.roomList.querySelector('[aria-current="true"]')?.focus();
});

// Another tab signed in or out: follow it.
window.addEventListener("storage", (event) => {
  if (event.key !== SESSION_KEY) return;
  const next = loadSession();
  if (!next && session) signOut(undefined, { clearStorage: false });
  else if (next && (!session || next.token !== session.token)) {
    if (session) signOut(undefined, { clearStorage: false });
    session = next;
    enterChat();
  }
});

// ---- start ---------------------------------------------------------------------------------

if (session) enterChat();
else showAuth();
