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
// list's newest-message line; opening a room loads its history.

import { ApiError, NetworkError, createApi, describeError, isNoAccess, isUnauthorized, roomPath } from "./api.js";
import { setupDialogs } from "./dialogs.js";
import { GLOBAL_ROOM_ID, RoomList, roomName } from "./roomlist.js";
import { compareIds, delay, formatTime, htmlToText, isId, maxId, setError, show } from "./util.js";

const SESSION_KEY = "chat.session";
const PAGE_SIZE = 50; // history page shown when a room opens and per "Load older"
const CATCH_UP_PAGE = 500; // the API's maximum limit
const SEND_RETRIES = 4; // automatic retries of one send after network failures
const NEAR_BOTTOM_PX = 80;
const REFRESH_DELAY_MS = 300; // membership changes of the open room, gathered into one GET
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
};

// ---- state ----------------------------------------------------------------------------

let session = loadSession(); // {token, userId, name} or null
let socket = null;
let generation = 0; // bumps on sign-out so late responses of an old session are dropped
let cursor = null; // the largest `_id` received on the connection, for all rooms
let pendingSend = null; // {roomId, id, text}: reused while the same text is retried
const drafts = new Map(); // room id -> unsent text
const refreshTimers = new Map(); // room id -> timer of a pending room refresh

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
  };
}
let view = newView(GLOBAL_ROOM_ID);

const api = createApi(() => session?.token ?? null);
const selfId = () => session?.userId ?? "";
const rooms = new RoomList({ list: ui.roomList, template: ui.roomTemplate, selfId, onSelect: (id) => openRoom(id) });
const dialogs = setupDialogs({
  api,
  rooms,
  selfId,
  activeRoom: () => rooms.get(view.roomId),
  openRoom: (id) => openRoom(id),
  expired: () => signOut(EXPIRED),
  refreshRoom: (id) => refreshRoomSoon(id),
});

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
  cursor = null;
  pendingSend = null;
  drafts.clear();
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
 * Load the user's rooms (`GET /rooms`): after the first connection, and again whenever
 * the gateway could not replay what a reconnecting page missed.
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
}

function resetView(roomId) {
  view = newView(roomId);
  rooms.setActive(roomId);
  ui.list.replaceChildren();
  setError(ui.historyError, "");
  setError(ui.roomError, "");
  setError(ui.sendError, "");
  show(ui.roomNotice, false);
  show(ui.composer, true);
  renderHeader();
  updateChrome();
}

/** Show a room: its header, its history, then its live messages. */
function openRoom(roomId) {
  setPane("room");
  if (roomId === view.roomId && !view.gone) {
    ui.input.focus();
    return;
  }
  if (!view.gone) drafts.set(view.roomId, ui.input.value);
  resetView(roomId);
  ui.input.value = drafts.get(roomId) ?? "";
  drafts.delete(roomId);
  autosize();
  loadHistory();
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
  const usable = Boolean(room) && !global && !view.gone;
  const canAdd = room?.kind === "public" || room?.role === "owner" || room?.role === "admin";
  show(ui.membersButton, usable);
  show(ui.inviteButton, usable && room.kind !== "direct" && !room.archived && canAdd);
  show(ui.leaveButton, usable && room.kind !== "direct");
}

/**
 * The room is no longer the user's (they left or were removed, possibly on another
 * device): it leaves the list, and the pane says so instead of showing its messages.
 */
function roomGone(roomId, reason) {
  if (roomId === GLOBAL_ROOM_ID) return;
  rooms.left(roomId);
  dialogs.roomGone(roomId);
  if (pendingSend?.roomId === roomId) pendingSend = null;
  drafts.delete(roomId);
  if (roomId !== view.roomId) return;
  const name = view.title ? `“${view.title}”` : "this room";
  view.gone = reason;
  view.ticket = ++viewTickets; // answers still on their way are for a room no longer shown
  view.messages = new Map();
  view.rendered = new Map();
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

function renderMessage(msg) {
  const li = ui.template.content.firstElementChild.cloneNode(true);
  const own = session !== null && String(msg.owner) === session.userId;
  li.dataset.id = String(msg._id);
  li.dataset.own = own ? "true" : "false";
  li.dataset.owner = String(msg.owner ?? "");
  li.classList.add(own ? "own" : "other");
  li.querySelector(".author").textContent = own ? `${msg.userName ?? ""} (you)` : String(msg.userName ?? "Unknown");
  const time = li.querySelector(".time");
  const when = formatTime(msg.createdAt);
  time.textContent = when.short;
  time.title = when.full;
  if (msg.createdAt) time.dateTime = String(msg.createdAt);
  li.querySelector(".text").textContent = htmlToText(msg.text);
  return li;
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
 * at bottom).
 */
function addMessages(list, { scroll = "auto" } = {}) {
  if (!Array.isArray(list)) list = [list];
  const wasNearBottom = isNearBottom();
  const beforeHeight = ui.scroller.scrollHeight;
  const beforeTop = ui.scroller.scrollTop;
  let added = 0;
  for (const raw of list) {
    if (!validMessage(raw)) continue;
    const msg = { ...raw, _id: String(raw._id) };
    if (view.messages.has(msg._id)) continue;
    view.messages.set(msg._id, msg);
    added += 1;
  }
  if (!added) {
    updateChrome();
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
      ui.list.insertBefore(li, next);
    }
    next = li;
  }
  updateChrome();
  if (scroll === "bottom" || (scroll === "auto" && wasNearBottom)) scrollToBottom();
  else if (scroll === "keep") ui.scroller.scrollTop = beforeTop + (ui.scroller.scrollHeight - beforeHeight);
  return added;
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
    addMessages(Array.isArray(page) ? page : [], { scroll: "bottom" });
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
    addMessages(Array.isArray(page) ? page : [], { scroll: "keep" });
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
    addMessages(page);
    if (page.length < CATCH_UP_PAGE) return;
    after = String(page[page.length - 1]._id);
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

  socket.on("connect", () => {
    setStatus("live");
    setError(ui.historyError, "");
    if (!rooms.loaded && !rooms.loading) loadRooms();
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
}

function onMessage(msg) {
  if (!validMessage(msg)) return;
  advance(msg);
  const roomId = typeof msg.room === "string" ? msg.room : GLOBAL_ROOM_ID;
  rooms.message(msg, roomId);
  if (roomId === view.roomId && !view.gone) addMessages([msg]);
}

function onRoomJoined(event) {
  advance(event);
  const room = event.room;
  if (!room || typeof room.id !== "string") return;
  rooms.joined(room, event._id);
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
  if (event.room.id === view.roomId) renderHeader();
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

async function sendMessage(roomId, text) {
  const gen = generation;
  // Same text after a failure: the same client id, so the server stores it at most once.
  if (!pendingSend || pendingSend.text !== text || pendingSend.roomId !== roomId) {
    pendingSend = { roomId, id: crypto.randomUUID(), text };
  }
  const attempt = pendingSend;
  for (let tries = 0; ; tries += 1) {
    try {
      const stored = await api("POST", roomPath(roomId, "/messages"), { body: { id: attempt.id, text: attempt.text } });
      if (gen !== generation) return false;
      if (pendingSend === attempt) pendingSend = null;
      rooms.message(stored, roomId);
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
  sending = true;
  ui.send.disabled = true;
  ui.composer.setAttribute("aria-busy", "true");
  setError(ui.sendError, "");
  try {
    const ok = await sendMessage(roomId, text);
    if (ok) {
      if (roomId === view.roomId) {
        setError(ui.sendError, "");
        if (ui.input.value === text) ui.input.value = "";
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
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

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
