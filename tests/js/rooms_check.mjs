// A rooms-aware client on the official socket.io-client 4.x: prints one JSON line per
// event so a Python test can drive it and check what it received (docs/ROOMS.md).
//
// usage: node rooms_check.mjs <baseUrl> <token> [timeoutMs=30000] [lastId]
//
// Output lines (JSON): {"event":"connect","id":...} once connected, then
// {"event":"<name>","data":{...}} for every message, roomJoined, roomLeft,
// memberChanged, roomUpdated, recovered and getAllmessages (a rooms-aware client must
// never get the last one). Exits 0 when its stdin closes, 1 after timeoutMs, 2 on
// connect_error.
import { io } from "socket.io-client";

const [baseUrl, token, timeoutArg = "30000", lastId] = process.argv.slice(2);
if (!baseUrl || !token) {
  console.error("usage: node rooms_check.mjs <baseUrl> <token> [timeoutMs] [lastId]");
  process.exit(64);
}
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const auth = { token, rooms: true };
if (lastId) auth.lastId = lastId;
const socket = io(baseUrl, { auth, transports: ["websocket"], reconnection: false });

const finish = (code) => {
  clearTimeout(timer);
  socket.close();
  process.exitCode = code;
  process.stdin.pause();
};
const timer = setTimeout(() => {
  emit({ event: "timeout" });
  finish(1);
}, Number.parseInt(timeoutArg, 10));

socket.on("connect", () => emit({ event: "connect", id: socket.id }));
socket.on("connect_error", (err) => {
  emit({ event: "connect_error", message: String(err && err.message) });
  finish(2);
});
socket.on("disconnect", (reason) => emit({ event: "disconnect", reason }));
for (const name of [
  "message",
  "roomJoined",
  "roomLeft",
  "memberChanged",
  "roomUpdated",
  "recovered",
  "getAllmessages",
]) {
  socket.on(name, (data) => emit({ event: name, data }));
}
process.stdin.on("end", () => finish(0));
process.stdin.resume();
