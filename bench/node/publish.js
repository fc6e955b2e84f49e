// Publisher for the Node reference: reads "<first_seq> <count>" lines on stdin and emits
// one message per seq through @socket.io/redis-emitter (the adapter's own wire format on
// "<key>#/#"), stamping `ts` (epoch seconds) at emit time. Prints "done <n>" after stdin
// closes and every publish was acknowledged by Redis.
//
// Global room (BENCH_ROOMS unset or 0): `emit("getAllmessages", msg)` to everyone.
// Rooms load (BENCH_ROOMS=R): seq s goes to room (s - 1) mod R, whose id is the UUID of
// the integer BENCH_ROOM_ID_BASE + room (bench/rooms.py computes the same), as
// `to(room).emit("message", {room, ...msg})`.
"use strict";
const readline = require("readline");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

const TEXT = process.env.BENCH_TEXT || "Benchmark message";
const KEY = process.env.SOCKETIO_CHANNEL || "socket.io";
const ROOMS = Number(process.env.BENCH_ROOMS || 0);
const ROOM_ID_BASE = Number(process.env.BENCH_ROOM_ID_BASE || 0);

function uuidOf(n) {
  const hex = n.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const roomIds = Array.from({ length: ROOMS }, (_, r) => uuidOf(ROOM_ID_BASE + r));

async function main() {
  const client = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379/0" });
  await client.connect();
  const emitter = new Emitter(client, { key: KEY });
  const { performance } = require("perf_hooks");
  let published = 0;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [first, count] = line.trim().split(/\s+/).map(Number);
    for (let seq = first; seq < first + count; seq++) {
      const ts = (performance.timeOrigin + performance.now()) / 1000;
      const createdAt = new Date(ts * 1000).toISOString();
      const owner = "00000000-0000-0000-0000-00000000beef";
      if (ROOMS > 0) {
        const room = roomIds[(seq - 1) % ROOMS];
        emitter.to(room).emit("message", {
          _id: String(seq), id: uuidOf(seq), room, owner, userName: "bench", text: TEXT, createdAt, ts,
        });
      } else {
        emitter.emit("getAllmessages", {
          _id: String(seq), id: uuidOf(seq), owner, userName: "bench", text: TEXT, createdAt, ts,
        });
      }
      published++;
    }
  });
  rl.on("close", async () => {
    // The emitter does not return the publish promise; a PING after them is ordered behind.
    await client.ping();
    process.stdout.write(`done ${published}\n`);
    await client.quit();
  });
}

main().catch((err) => { console.error(err); process.exit(1); });
