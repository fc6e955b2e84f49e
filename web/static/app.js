// The chat page: plain ES module, no framework, no bundler.
//
// REST and Socket.IO share this page's origin (the load balancer routes /socket.io/ to
// the gateways and everything else to the API). The session (token, user id, name) is
// kept in localStorage. Messages are kept in one Map keyed by `_id` (so every source --
// history, POST replies, live events, catch-up after a reconnect -- de-duplicates) and
// rendered in numeric `_id` order.

const SESSION_KEY = "chat.session";
const PAGE_SIZE = 50; // history page shown at sign-in and per "Load older"
const CATCH_UP_PAGE = 500; // the API's maximum limit
const SEND_RETRIES = 4; // automatic retries of one send after network failures
const NEAR_BOTTOM_PX = 80;

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
let messages = new Map(); // _id -> message
let rendered = new Map(); // _id -> <li>
let hasOlder = false;
let pendingSend = null; // {id, text}: reused while the same text is retried
let generation = 0; // bumps on sign-out so late responses of an old session are dropped

// ---- helpers --------------------------------------------------------------------------

/** Compare decimal `_id` strings numerically (they may exceed 2^53). */
export function compareIds(a, b) {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function isId(value) {
  return typeof value === "string" ? /^\d{1,19}$/.test(value) : Number.isSafeInteger(value) && value >= 0;
}

function sortedIds() {
  return [...messages.keys()].sort(compareIds);
}

function newestId() {
  let best = null;
  for (const id of messages.keys()) if (best === null || compareIds(id, best) > 0) best = id;
  return best;
}

function oldestId() {
  let best = null;
  for (const id of messages.keys()) if (best === null || compareIds(id, best) < 0) best = id;
  return best;
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

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { short: "", full: "" };
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const short = sameDay ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  return { short, full: date.toLocaleString() };
}

function show(el, visible) {
  el.hidden = !visible;
}

function setError(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const message = body && typeof body.message === "string" && body.message ? body.message : `Request failed (HTTP ${status})`;
    super(message);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }

  describe() {
    const fields = this.body && typeof this.body.fields === "object" && this.body.fields ? this.body.fields : null;
    const details = fields ? Object.entries(fields).map(([k, v]) => `${k}: ${v}`) : [];
    let text = details.length ? `${this.message} (${details.join("; ")})` : this.message;
    if (this.status === 429 && this.retryAfter) text += ` Try again in ${this.retryAfter} s.`;
    return text;
  }
}

class NetworkError extends Error {}

/** fetch against this origin; JSON in and out; throws ApiError (HTTP) or NetworkError. */
async function api(method, path, { body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    throw new NetworkError("Cannot reach the server. Check your connection.", { cause: err });
  }
  let data = null;
  const text = await response.text().catch(() => "");
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
  return data;
}

function describeError(err) {
  if (err instanceof ApiError) return err.describe();
  if (err instanceof NetworkError) return err.message;
  return "Something went wrong.";
}

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
  messages = new Map();
  rendered = new Map();
  ui.list.replaceChildren();
  pendingSend = null;
  ui.input.value = "";
  hasOlder = false;
  setError(ui.sendError, "");
  setError(ui.historyError, "");
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
  updateChrome();
  try {
    const page = await api("GET", `/messages?limit=${PAGE_SIZE}`);
    if (gen !== generation) return;
    hasOlder = Array.isArray(page) && page.length >= PAGE_SIZE;
    addMessages(page, { scroll: "bottom" });
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) {
      signOut("Your session has expired. Please sign in again.");
      return;
    }
    setError(ui.historyError, `Could not load messages: ${describeError(err)}`);
  }
  connectSocket();
  ui.input.focus();
}

// ---- rendering ---------------------------------------------------------------------------

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

/**
 * Merge messages from any source: de-duplicated by `_id`, inserted in numeric `_id`
 * order. scroll: "bottom" | "keep" (prepending older) | "auto" (follow if at bottom).
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
    if (messages.has(msg._id)) continue;
    messages.set(msg._id, msg);
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
    let li = rendered.get(id);
    if (!li) {
      li = renderMessage(messages.get(id));
      rendered.set(id, li);
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
  show(ui.loadOlder, hasOlder);
  show(ui.historyStart, !hasOlder && messages.size > 0);
  show(ui.empty, messages.size === 0);
}

// ---- history -----------------------------------------------------------------------------

async function loadOlder() {
  const oldest = oldestId();
  if (!oldest) return;
  const gen = generation;
  ui.loadOlder.disabled = true;
  ui.loadOlder.setAttribute("aria-busy", "true");
  setError(ui.historyError, "");
  try {
    const page = await api("GET", `/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(oldest)}`);
    if (gen !== generation) return;
    hasOlder = Array.isArray(page) && page.length >= PAGE_SIZE;
    addMessages(page, { scroll: "keep" });
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) return signOut("Your session has expired. Please sign in again.");
    setError(ui.historyError, `Could not load older messages: ${describeError(err)}`);
  } finally {
    ui.loadOlder.disabled = false;
    ui.loadOlder.removeAttribute("aria-busy");
  }
}

/** Fetch everything after `fromId` over REST (the gap was too old for the live buffer). */
async function catchUp(fromId) {
  const gen = generation;
  let cursor = fromId;
  for (let pages = 0; pages < 100; pages += 1) {
    const path = cursor ? `/messages?limit=${CATCH_UP_PAGE}&after=${encodeURIComponent(cursor)}` : `/messages?limit=${PAGE_SIZE}`;
    let page;
    try {
      page = await api("GET", path);
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof ApiError && err.status === 401) return signOut("Your session has expired. Please sign in again.");
      setError(ui.historyError, `Could not fetch missed messages: ${describeError(err)}`);
      return;
    }
    if (gen !== generation || !Array.isArray(page)) return;
    addMessages(page);
    if (!cursor || page.length < CATCH_UP_PAGE) return;
    cursor = String(page[page.length - 1]._id);
  }
}

// ---- live connection ------------------------------------------------------------------------

const STATUS_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.statusLabel.textContent = STATUS_TEXT[state];
  ui.status.setAttribute("aria-label", `Connection: ${STATUS_TEXT[state]}`);
}

function connectSocket() {
  if (typeof window.io !== "function") {
    setStatus("offline");
    setError(ui.historyError, "The real-time client failed to load; reload the page.");
    return;
  }
  const gen = generation;
  // `auth` is a function so every (re)connection sends the newest _id we hold; the
  // gateway then replays what we missed (or tells us to refetch over REST).
  socket = window.io(window.location.origin, {
    auth: (cb) => {
      const lastId = newestId();
      cb(lastId ? { token: session?.token, lastId } : { token: session?.token });
    },
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  const manager = socket.io;

  socket.on("connect", () => {
    setStatus("live");
    setError(ui.historyError, "");
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
      signOut("Your session has expired. Please sign in again.");
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

  socket.on("getAllmessages", (msg) => {
    if (gen === generation) addMessages([msg]);
  });
  socket.on("recovered", (info) => {
    if (gen !== generation || !info || info.recovered !== false) return;
    // The gap is older than the gateway's buffer: catch up from what we actually hold.
    catchUp(newestId() || (isId(info.lastId) ? String(info.lastId) : null));
  });
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

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sendMessage(text) {
  const gen = generation;
  // Same text after a failure: the same client id, so the server stores it at most once.
  if (!pendingSend || pendingSend.text !== text) pendingSend = { id: crypto.randomUUID(), text };
  const attempt = pendingSend;
  for (let tries = 0; ; tries += 1) {
    try {
      const stored = await api("POST", "/messages", { body: { id: attempt.id, text: attempt.text } });
      if (gen !== generation) return false;
      if (pendingSend === attempt) pendingSend = null;
      addMessages([stored], { scroll: "bottom" });
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
      if (err instanceof ApiError && err.status === 401) {
        signOut("Your session has expired. Please sign in again.");
        return false;
      }
      if (!transient) pendingSend = null; // rejected for good: a new attempt is a new message
      setError(ui.sendError, transient ? `${describeError(err)} Press Send to try again.` : describeError(err));
      return false;
    }
  }
}

let sending = false;
async function submitComposer(event) {
  event.preventDefault();
  if (sending) return;
  const text = ui.input.value;
  if (!text.trim()) {
    ui.input.focus();
    return;
  }
  sending = true;
  ui.send.disabled = true;
  ui.composer.setAttribute("aria-busy", "true");
  setError(ui.sendError, "");
  try {
    const ok = await sendMessage(text);
    if (ok) {
      setError(ui.sendError, "");
      if (ui.input.value === text) ui.input.value = "";
      autosize();
    }
  } finally {
    sending = false;
    ui.send.disabled = false;
    ui.composer.removeAttribute("aria-busy");
    ui.input.focus();
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
