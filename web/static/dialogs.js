// The page's dialogs: create a room, browse public rooms, find people (to invite them or
// to message them directly), the members of a room, and a yes/no confirmation.
//
// Each is a native <dialog> opened with showModal() (focus kept inside, Escape closes).
// Everything a user or the server wrote is set as textContent.

import { describeError, isUnauthorized, roomPath } from "./api.js";
import { describePresence, fillDot } from "./presence.js";
import { GLOBAL_ROOM_ID, roomName } from "./roomlist.js";
import { setError, show } from "./util.js";

const BROWSE_PAGE = 20;
const MEMBERS_PAGE = 50;
const PEOPLE_LIMIT = 10;
const SEARCH_DEBOUNCE_MS = 250;
const ROLE_TEXT = { owner: "Owner", admin: "Admin", member: "Member" };

const $ = (id) => document.getElementById(id);

function openDialog(dialog) {
  if (!dialog.open) dialog.showModal();
}

/** The list in an answer that is either the list itself or `{<key>: [...], next}`. */
function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  return [];
}

function nextOf(data) {
  return data && !Array.isArray(data) && data.next != null && data.next !== "" ? String(data.next) : null;
}

/** The room in an answer that is a room, or `{room: {...}}`. */
function roomOf(data) {
  if (data && typeof data.id === "string") return data;
  if (data && data.room && typeof data.room.id === "string") return data.room;
  return null;
}

/** Whether a member with `myRole` may remove `member` (docs/ROOMS.md, Roles). */
export function canRemove(room, myRole, member, selfId) {
  if (!room || room.kind === "direct" || room.id === GLOBAL_ROOM_ID) return false;
  if (String(member.id) === selfId) return false;
  if (myRole === "owner") return member.role !== "owner";
  if (myRole === "admin") return member.role === "member";
  return false;
}

/**
 * ctx: {api, rooms (RoomList), presence (Presence), selfId(), activeRoom(), openRoom(id),
 * expired()}. `expired()` signs the page out when the token is refused.
 */
export function setupDialogs(ctx) {
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  const failed = (err, errorEl, prefix = "") => {
    if (isUnauthorized(err)) {
      ctx.expired();
      return;
    }
    setError(errorEl, `${prefix}${describeError(err)}`);
  };

  // ---- confirm --------------------------------------------------------------------------

  const confirmUi = { dialog: $("confirm-dialog"), text: $("confirm-text"), ok: $("confirm-ok"), cancel: $("confirm-cancel") };
  let confirmResolve = null;
  confirmUi.ok.addEventListener("click", () => confirmUi.dialog.close("ok"));
  confirmUi.cancel.addEventListener("click", () => confirmUi.dialog.close("cancel"));
  confirmUi.dialog.addEventListener("close", () => {
    const resolve = confirmResolve;
    confirmResolve = null;
    if (resolve) resolve(confirmUi.dialog.returnValue === "ok");
  });

  /** Ask a yes/no question in the page (never window.confirm). */
  function confirm(text, okLabel) {
    if (confirmResolve) confirmResolve(false);
    confirmUi.text.textContent = text;
    confirmUi.ok.textContent = okLabel;
    confirmUi.dialog.returnValue = "";
    return new Promise((resolve) => {
      confirmResolve = resolve;
      openDialog(confirmUi.dialog);
      confirmUi.cancel.focus();
    });
  }

  // ---- create a room ------------------------------------------------------------------------

  const createUi = { dialog: $("create-dialog"), form: $("create-form"), error: $("create-error"), submit: $("create-submit") };

  function openCreate() {
    createUi.form.reset();
    setError(createUi.error, "");
    openDialog(createUi.dialog);
    createUi.form.elements.name.focus();
  }

  createUi.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(createUi.form);
    const name = String(data.get("name") || "").trim();
    const topic = String(data.get("topic") || "").trim();
    const kind = data.get("kind") === "private" ? "private" : "public";
    if (!name) {
      setError(createUi.error, "Give the room a name.");
      createUi.form.elements.name.focus();
      return;
    }
    setError(createUi.error, "");
    createUi.submit.disabled = true;
    try {
      const body = topic ? { name, topic, kind } : { name, kind };
      const room = roomOf(await ctx.api("POST", "/rooms", { body }));
      if (!room) throw new Error("unexpected answer");
      ctx.rooms.joined(room);
      createUi.dialog.close();
      ctx.openRoom(room.id);
    } catch (err) {
      failed(err, createUi.error);
    } finally {
      createUi.submit.disabled = false;
    }
  });

  // ---- browse public rooms ------------------------------------------------------------------

  const browseUi = {
    dialog: $("browse-dialog"),
    form: $("browse-form"),
    input: $("browse-search"),
    list: $("browse-list"),
    empty: $("browse-empty"),
    more: $("browse-more"),
    error: $("browse-error"),
    template: $("public-room-template"),
  };
  let browse = { q: "", next: null, ticket: 0 };
  let browseTimer = null;

  function openBrowse() {
    browseUi.input.value = "";
    browseUi.list.replaceChildren();
    delete browseUi.list.dataset.query;
    openDialog(browseUi.dialog);
    browseUi.input.focus();
    searchRooms("", false);
  }

  async function searchRooms(q, append) {
    const ticket = ++browse.ticket;
    const params = new URLSearchParams({ limit: String(BROWSE_PAGE) });
    if (q) params.set("q", q);
    if (append && browse.next) params.set("cursor", browse.next);
    setError(browseUi.error, "");
    browseUi.more.disabled = true;
    browseUi.list.setAttribute("aria-busy", "true");
    try {
      const data = await ctx.api("GET", `/rooms/public?${params}`);
      if (ticket !== browse.ticket) return;
      browse = { q, next: nextOf(data), ticket };
      const rows = listOf(data, "rooms").filter((room) => room && typeof room.id === "string");
      if (!append) browseUi.list.replaceChildren();
      for (const room of rows) browseUi.list.append(publicRoomItem(room));
      browseUi.list.dataset.query = q; // what the list shows the rooms for
      show(browseUi.empty, browseUi.list.children.length === 0);
      show(browseUi.more, Boolean(browse.next));
    } catch (err) {
      if (ticket === browse.ticket) failed(err, browseUi.error, "Could not load public rooms: ");
    } finally {
      if (ticket === browse.ticket) {
        browseUi.more.disabled = false;
        browseUi.list.removeAttribute("aria-busy");
      }
    }
  }

  function publicRoomItem(room) {
    const li = browseUi.template.content.firstElementChild.cloneNode(true);
    li.dataset.roomId = room.id;
    li.querySelector(".public-room-name").textContent = String(room.name ?? "");
    const topic = li.querySelector(".public-room-topic");
    topic.textContent = room.topic ? String(room.topic) : "";
    topic.hidden = !room.topic;
    const count = Number.isSafeInteger(room.memberCount) ? room.memberCount : null;
    li.querySelector(".public-room-count").textContent = count === null ? "" : `${count} member${count === 1 ? "" : "s"}`;
    const button = li.querySelector("button");
    const member = ctx.rooms.has(room.id);
    button.textContent = member ? "Open" : "Join";
    button.addEventListener("click", () => joinRoom(room, button));
    return li;
  }

  async function joinRoom(room, button) {
    if (ctx.rooms.has(room.id)) {
      browseUi.dialog.close();
      ctx.openRoom(room.id);
      return;
    }
    button.disabled = true;
    setError(browseUi.error, "");
    try {
      const reply = await ctx.api("POST", roomPath(room.id, "/join"));
      ctx.rooms.joined(roomOf(reply) ?? room);
      browseUi.dialog.close();
      ctx.openRoom(room.id);
    } catch (err) {
      failed(err, browseUi.error, `Could not join ${String(room.name ?? "the room")}: `);
    } finally {
      button.disabled = false;
    }
  }

  browseUi.form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(browseTimer);
    searchRooms(browseUi.input.value.trim(), false);
  });
  browseUi.input.addEventListener("input", () => {
    clearTimeout(browseTimer);
    show(browseUi.more, false); // the next page would be of the previous search
    browseTimer = setTimeout(() => searchRooms(browseUi.input.value.trim(), false), SEARCH_DEBOUNCE_MS);
  });
  browseUi.more.addEventListener("click", () => searchRooms(browse.q, true));

  // ---- find people: invite to the active room, or message directly ---------------------------

  const peopleUi = {
    dialog: $("people-dialog"),
    title: $("people-title"),
    form: $("people-form"),
    input: $("people-search"),
    list: $("people-list"),
    empty: $("people-empty"),
    error: $("people-error"),
    template: $("person-template"),
  };
  let people = { mode: "direct", roomId: null, ticket: 0 };

  /** mode "direct": message someone; mode "invite": add them to the active room. */
  function openPeople(mode) {
    const room = ctx.activeRoom();
    people = { mode, roomId: mode === "invite" && room ? room.id : null, ticket: people.ticket + 1 };
    peopleUi.dialog.dataset.mode = mode;
    peopleUi.title.textContent = mode === "invite" ? `Invite people to ${roomName(room)}` : "Message someone";
    peopleUi.form.reset();
    peopleUi.list.replaceChildren();
    show(peopleUi.empty, false);
    setError(peopleUi.error, "");
    openDialog(peopleUi.dialog);
    peopleUi.input.focus();
  }

  async function findPeople(query) {
    const ticket = ++people.ticket;
    const q = query.trim();
    let path;
    if (q.includes("@")) path = `/users?${new URLSearchParams({ email: q })}`;
    else if (q.length >= 2) path = `/users?${new URLSearchParams({ name: q, limit: String(PEOPLE_LIMIT) })}`;
    else {
      setError(peopleUi.error, "Enter an email address, or at least 2 letters of a name.");
      return;
    }
    setError(peopleUi.error, "");
    peopleUi.list.setAttribute("aria-busy", "true");
    try {
      const data = await ctx.api("GET", path);
      if (ticket !== people.ticket) return;
      const found = listOf(data, "users").filter((u) => u && u.id != null && String(u.id) !== ctx.selfId());
      peopleUi.list.replaceChildren(...found.map(personItem));
      show(peopleUi.empty, found.length === 0);
    } catch (err) {
      if (ticket === people.ticket) failed(err, peopleUi.error, "Could not search: ");
    } finally {
      if (ticket === people.ticket) peopleUi.list.removeAttribute("aria-busy");
    }
  }

  function personItem(user) {
    const li = peopleUi.template.content.firstElementChild.cloneNode(true);
    li.dataset.userId = String(user.id);
    li.querySelector(".person-name").textContent = String(user.name ?? "");
    const button = li.querySelector("button");
    button.textContent = people.mode === "invite" ? "Add" : "Message";
    button.addEventListener("click", () => (people.mode === "invite" ? invite(user, button) : messageDirectly(user, button)));
    return li;
  }

  async function messageDirectly(user, button) {
    button.disabled = true;
    setError(peopleUi.error, "");
    try {
      const room = roomOf(await ctx.api("POST", "/rooms/direct", { body: { userId: String(user.id) } }));
      if (!room) throw new Error("unexpected answer");
      ctx.rooms.joined(room);
      peopleUi.dialog.close();
      ctx.openRoom(room.id);
    } catch (err) {
      failed(err, peopleUi.error, `Could not message ${String(user.name ?? "them")}: `);
    } finally {
      button.disabled = false;
    }
  }

  async function invite(user, button) {
    const roomId = people.roomId;
    if (!roomId) return;
    button.disabled = true;
    setError(peopleUi.error, "");
    try {
      await ctx.api("POST", roomPath(roomId, "/members"), { body: { userId: String(user.id) } });
      button.textContent = "Added";
      button.dataset.done = "true";
      ctx.refreshRoom(roomId);
    } catch (err) {
      button.disabled = false;
      failed(err, peopleUi.error, `Could not add ${String(user.name ?? "them")}: `);
    }
  }

  peopleUi.form.addEventListener("submit", (event) => {
    event.preventDefault();
    findPeople(peopleUi.input.value);
  });

  // ---- members -------------------------------------------------------------------------------

  const membersUi = {
    dialog: $("members-dialog"),
    title: $("members-title"),
    list: $("members-list"),
    more: $("members-more"),
    error: $("members-error"),
    template: $("member-template"),
  };
  let members = { roomId: null, next: null, ticket: 0 };

  function openMembers() {
    const room = ctx.activeRoom();
    if (!room || room.id === GLOBAL_ROOM_ID) return;
    members = { roomId: room.id, next: null, ticket: members.ticket + 1 };
    membersUi.title.textContent = `Members of ${roomName(room)}`;
    membersUi.list.replaceChildren();
    show(membersUi.more, false);
    setError(membersUi.error, "");
    openDialog(membersUi.dialog);
    loadMembers(false);
    // Who of them is online: the first page of the room's presence (the rest of the
    // list shows what the page already knows, and live changes).
    ctx.presence.load(ctx.api, room.id, MEMBERS_PAGE);
  }

  async function loadMembers(append) {
    const ticket = ++members.ticket;
    const roomId = members.roomId;
    const params = new URLSearchParams({ limit: String(MEMBERS_PAGE) });
    if (append && members.next) params.set("cursor", members.next);
    membersUi.more.disabled = true;
    membersUi.list.setAttribute("aria-busy", "true");
    try {
      const data = await ctx.api("GET", roomPath(roomId, `/members?${params}`));
      if (ticket !== members.ticket) return;
      members.next = nextOf(data);
      if (!append) membersUi.list.replaceChildren();
      for (const member of listOf(data, "members")) {
        if (member && member.id != null && !memberItem(String(member.id))) membersUi.list.append(renderMember(member));
      }
      show(membersUi.more, Boolean(members.next));
    } catch (err) {
      if (ticket === members.ticket) failed(err, membersUi.error, "Could not load the members: ");
    } finally {
      if (ticket === members.ticket) {
        membersUi.more.disabled = false;
        membersUi.list.removeAttribute("aria-busy");
      }
    }
  }

  function memberItem(userId) {
    for (const li of membersUi.list.children) if (li.dataset.userId === userId) return li;
    return null;
  }

  function renderMember(member) {
    const li = membersUi.template.content.firstElementChild.cloneNode(true);
    li.dataset.userId = String(member.id);
    li.querySelector(".member-name").textContent = String(member.name ?? "") + (String(member.id) === ctx.selfId() ? " (you)" : "");
    li.querySelector("button").addEventListener("click", () => removeMember(li));
    setRole(li, member.role);
    showPresence(li);
    return li;
  }

  function showPresence(li) {
    const state = ctx.presence.get(li.dataset.userId);
    fillDot(li.querySelector(".presence-dot"), state);
    li.dataset.online = state ? String(state.online) : "unknown";
    li.querySelector(".member-seen").textContent = describePresence(state);
  }

  /** Users' presence changed: the open members list shows it. */
  function presenceChanged(userIds) {
    if (!membersUi.dialog.open) return;
    for (const li of membersUi.list.children) if (userIds.has(li.dataset.userId)) showPresence(li);
  }

  /** Show a member's role, and the remove button only where the user's own role allows it. */
  function setRole(li, role) {
    li.dataset.role = role in ROLE_TEXT ? role : "member";
    li.querySelector(".member-role").textContent = ROLE_TEXT[li.dataset.role];
    const room = ctx.rooms.get(members.roomId);
    const allowed = canRemove(room, room?.role, { id: li.dataset.userId, role: li.dataset.role }, ctx.selfId());
    show(li.querySelector("button"), allowed);
  }

  async function removeMember(li) {
    const roomId = members.roomId;
    const name = li.querySelector(".member-name").textContent;
    const room = ctx.rooms.get(roomId);
    if (!(await confirm(`Remove ${name} from ${roomName(room)}?`, "Remove"))) return;
    const button = li.querySelector("button");
    button.disabled = true;
    setError(membersUi.error, "");
    try {
      await ctx.api("DELETE", roomPath(roomId, `/members/${encodeURIComponent(li.dataset.userId)}`));
      li.remove();
      ctx.refreshRoom(roomId);
    } catch (err) {
      button.disabled = false;
      failed(err, membersUi.error, `Could not remove ${name}: `);
    }
  }

  /** `memberChanged` of a room: keep an open members list in step. */
  function memberChanged(roomId, user, role) {
    if (!membersUi.dialog.open || members.roomId !== roomId || !user || user.id == null) return;
    const li = memberItem(String(user.id));
    if (role === null || role === undefined) {
      if (li) li.remove();
    } else if (li) {
      setRole(li, role);
    } else if (!members.next) {
      membersUi.list.append(renderMember({ id: user.id, name: user.name, role }));
    }
  }

  /** The user's own role changed: what they may do to others changed with it. */
  function permissionsChanged(roomId) {
    if (!membersUi.dialog.open || members.roomId !== roomId) return;
    for (const li of membersUi.list.children) setRole(li, li.dataset.role);
  }

  membersUi.more.addEventListener("click", () => loadMembers(true));

  /** The room is gone for the user (left, removed): close what refers to it. */
  function roomGone(roomId) {
    if (membersUi.dialog.open && members.roomId === roomId) membersUi.dialog.close();
    if (peopleUi.dialog.open && people.mode === "invite" && people.roomId === roomId) peopleUi.dialog.close();
  }

  function closeAll() {
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  }

  return {
    openCreate,
    openBrowse,
    openPeople,
    openMembers,
    confirm,
    memberChanged,
    permissionsChanged,
    presenceChanged,
    roomGone,
    closeAll,
  };
}
