// What a visitor likes is also sent to the API (POST /feedback), so the next model learns from it.
// The visitor is a random UUIDv4 made once in this browser; nothing else is sent about them. Changes
// wait in localStorage until the API has them: a failed send is retried with the next change or the
// next page, and the site works the same while the API is down. "Forget me" waits for a send under
// way, then deletes them all; the server refuses that id from then on (410), so this browser makes a
// new one.
import { API_URL } from "../config.js";

const VISITOR = "movie-recommender.visitor";
const PENDING = "movie-recommender.pending";
const PER_REQUEST = 48; // what the API accepts per list
let sending = null;
let forgetting = false; // no send starts while "Forget me" runs

export function visitorId() {
  let id = localStorage.getItem(VISITOR);
  if (!id || !/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)) {
    id = crypto.randomUUID();
    localStorage.setItem(VISITOR, id);
  }
  return id;
}

function pending() {
  try {
    const saved = JSON.parse(localStorage.getItem(PENDING) || "{}");
    const ids = (list) => (Array.isArray(list) ? list.filter(Number.isInteger) : []);
    return { like: ids(saved.like), unlike: ids(saved.unlike) };
  } catch {
    return { like: [], unlike: [] };
  }
}

function save(changes) {
  localStorage.setItem(PENDING, JSON.stringify(changes));
}

// Queue likes and unlikes (the latest word on a movie wins) and send them.
export function record({ like = [], unlike = [] }) {
  const now = pending();
  const liked = new Set([...now.like.filter((id) => !unlike.includes(id)), ...like]);
  const unliked = new Set([...now.unlike.filter((id) => !like.includes(id)), ...unlike]);
  save({ like: [...liked], unlike: [...unliked] });
  return flush();
}

// Send what is queued, a request at a time; resolves when the queue is empty or the API failed.
export function flush() {
  if (forgetting) return Promise.resolve(false);
  sending ??= drain().finally(() => { sending = null; });
  return sending;
}

async function drain() {
  for (;;) {
    const queued = pending();
    if (!queued.like.length && !queued.unlike.length) return true;
    const batch = { like: queued.like.slice(0, PER_REQUEST), unlike: queued.unlike.slice(0, PER_REQUEST) };
    let response;
    try {
      response = await fetch(`${API_URL.replace(/\/$/, "")}/feedback`, {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ visitor_id: visitorId(), ...batch }),
      });
    } catch {
      return false; // unreachable: kept for the next try
    }
    if (response.status >= 500 || response.status === 429 || response.status === 403) return false;
    if (response.status === 410) localStorage.removeItem(VISITOR); // forgotten elsewhere: a new id next time
    // stored (200), or refused for good (400, 409: the cap, 410): either way these leave the queue
    const after = pending();
    save({
      like: after.like.filter((id) => !batch.like.includes(id)),
      unlike: after.unlike.filter((id) => !batch.unlike.includes(id)),
    });
  }
}

// Delete every like the API holds for this visitor, then this browser's id and queue.
// A send under way finishes first (its likes are then deleted with the rest), and none starts until
// the server has answered.
export async function forget() {
  forgetting = true;
  try {
    await sending;
    const id = localStorage.getItem(VISITOR);
    let deleted = 0;
    if (id) {
      const response = await fetch(`${API_URL.replace(/\/$/, "")}/feedback/${id}`, {
        method: "DELETE", headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(body?.error?.message ?? `the API answered ${response.status}`);
      deleted = body.deleted;
    }
    localStorage.removeItem(VISITOR);
    localStorage.removeItem(PENDING);
    return deleted;
  } finally {
    forgetting = false;
  }
}
