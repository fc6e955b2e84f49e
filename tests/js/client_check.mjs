// Connects to the chat backend exactly like the existing React client (chatApi.ts)
// and prints one JSON line per event, so a Python test can drive and check it.
//
// usage: node client_check.mjs <baseUrl> <token> [count=1] [timeoutMs=20000] [owner]
//
// Output lines (JSON): {"event":"open","transport":"polling"} {"event":"connect",...}
// {"event":"upgrade","transport":"websocket"}
// {"event":"ready"} once connected AND upgraded, {"event":"message","data":{...}} per
// getAllmessages (only those whose owner equals [owner] when given), then exits 0 after
// <count> messages, or prints {"event":"timeout"} / {"event":"connect_error"} and exits 1/2.
import { io } from "socket.io-client";

const [baseUrl, token, countArg = "1", timeoutArg = "20000", owner] = process.argv.slice(2);
if (!baseUrl || !token) {
  console.error("usage: node client_check.mjs <baseUrl> <token> [count] [timeoutMs] [owner]");
  process.exit(64);
}
const wanted = Number.parseInt(countArg, 10);
const timeoutMs = Number.parseInt(timeoutArg, 10);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// The exact options of the existing client: default transports (polling first, then
// the websocket upgrade) and the token only as a polling extra header.
const socket = io(baseUrl, {
  transportOptions: {
    polling: {
      extraHeaders: {
        Authorization: `Bearer ${token}`,
      },
    },
  },
});

let received = 0;
let connected = false;
let upgraded = false;
let readySent = false;
const finish = (code) => {
  clearTimeout(timer);
  socket.close();
  process.exitCode = code;
};
const timer = setTimeout(() => {
  emit({ event: "timeout", received, connected, upgraded });
  finish(1);
}, timeoutMs);

const maybeReady = () => {
  if (connected && upgraded && !readySent) {
    readySent = true;
    emit({ event: "ready", id: socket.id });
  }
};

// The Engine.IO connection opens (with its first transport) before the Socket.IO
// "connect", and the websocket upgrade may finish before or after that "connect".
socket.io.on("open", () => {
  const engine = socket.io.engine;
  emit({ event: "open", transport: engine.transport.name });
  engine.once("upgrade", (transport) => {
    upgraded = transport.name === "websocket";
    emit({ event: "upgrade", transport: transport.name });
    maybeReady();
  });
});

socket.on("connect", () => {
  connected = true;
  emit({ event: "connect", transport: socket.io.engine.transport.name });
  maybeReady();
});

socket.on("connect_error", (err) => {
  emit({ event: "connect_error", message: String(err && err.message) });
  finish(2);
});

socket.on("disconnect", (reason) => {
  emit({ event: "disconnect", reason });
});

socket.on("getAllmessages", (data) => {
  if (owner && (!data || String(data.owner) !== owner)) return;
  received += 1;
  emit({ event: "message", data });
  if (received >= wanted) finish(0);
});
