// Reference gateway for `python -m bench --target node`: Socket.IO for Node with the
// Redis adapter, the same authentication contract as our gateway (JWT HS256 from
// auth.token, ?token= or Authorization: Bearer), emitting `getAllmessages` published
// through @socket.io/redis-emitter (see publish.js). Env: PORT, REDIS_URL, JWT_SECRET,
// SOCKETIO_CHANNEL (used as the adapter key, so channels are "<key>#/#"). In a rooms
// load (`python -m bench --rooms N`) each socket joins, server-side, the room named in
// its handshake query (`?room=<id>`), and publish.js emits with `.to(room)`.
"use strict";
const http = require("http");
const crypto = require("crypto");
const { createClient } = require("redis");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");

const PORT = Number(process.env.PORT || 8201);
const HOST = process.env.HOST || "127.0.0.1";
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const SECRET = process.env.JWT_SECRET || "dev-only-insecure-jwt-secret-change-me";
const KEY = process.env.SOCKETIO_CHANNEL || "socket.io";

function b64url(buf) {
  return buf.toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

function verify(token) {
  if (typeof token !== "string") throw new Error("missing token");
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("invalid token");
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  if (header.alg !== "HS256") throw new Error("invalid token");
  const mac = b64url(crypto.createHmac("sha256", SECRET).update(parts[0] + "." + parts[1]).digest());
  const a = Buffer.from(mac), b = Buffer.from(parts[2]);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw new Error("invalid token");
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  if (typeof claims.sub !== "string" || typeof claims.name !== "string") throw new Error("invalid token");
  if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) throw new Error("token expired");
  return { userId: claims.sub, name: claims.name };
}

function tokenOf(handshake) {
  if (handshake.auth && typeof handshake.auth.token === "string" && handshake.auth.token) {
    return handshake.auth.token.replace(/^Bearer\s+/i, "");
  }
  const header = handshake.headers.authorization;
  if (header && /^Bearer\s+/i.test(header)) return header.replace(/^Bearer\s+/i, "");
  return handshake.query.token;
}

async function main() {
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer((req, res) => {
    if (req.url === "/healthz" || req.url === "/readyz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
    } else if (!req.url.startsWith("/socket.io/")) {
      res.writeHead(404);
      res.end();
    }
  });
  const io = new Server(server, { adapter: createAdapter(pub, sub, { key: KEY }) });
  io.use((socket, next) => {
    try {
      socket.data.user = verify(tokenOf(socket.handshake));
      next();
    } catch (err) {
      next(new Error("unauthorized: " + err.message));
    }
  });
  io.on("connection", (socket) => {
    // Rooms load: the server puts the socket in the room the bench named in the query
    // (no membership store here); the client never sends a join.
    const room = socket.handshake.query.room;
    if (typeof room === "string" && room) socket.join(room);
    socket.on("sendAllMessages", () => {}); // ignored, like ours
  });
  server.listen(PORT, HOST);
  const stop = () => { io.close(); Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0)); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
