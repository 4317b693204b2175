// What a visitor likes is also sent to the API (POST /feedback), so the next model learns from it.
// The visitor is a random UUIDv4 made once in this browser; nothing else is sent about them. Changes
// wait in localStorage until the API has them: a failed send is retried with the next change or the
// next page, and the site works the same while the API is down. "Forget me" waits for a send under
// way, then deletes them all; the server refuses that id from then on (410), so this browser makes a
// new one.
//
// Online quality (docs/OPERATIONS.md): a like of a pick the page showed says where it was shown
// (the list, the model version, its place), and the pages count the picks they show, each pick once
// per page view. The counts ride along with the next change, or go on their own a few seconds after
// the last pick was shown, or when the page is left: a request per batch, with no id but the visitor's.
import { API_URL } from "../config.js";

const VISITOR = "movie-recommender.visitor";
const PENDING = "movie-recommender.pending";
const PER_REQUEST = 48; // what the API accepts per list
const SHOWN_GROUPS = 8; // groups of shown picks the API accepts per request
const SHOWN_WAIT_MS = 3000; // shown picks wait this long for more before they go on their own
const LISTS = new Set(["personalized", "popularity", "similar", "taste"]);
const seen = new Set(); // the picks this page view has counted: list, version, movie
let shownTimer = 0;
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
    const picked = Array.isArray(saved.picked) ? saved.picked.filter((p) => Number.isInteger(p?.movie_id)) : [];
    const shown = Array.isArray(saved.shown) ? saved.shown.filter((g) => Number.isInteger(g?.picks) && g.picks > 0) : [];
    return { like: ids(saved.like), unlike: ids(saved.unlike), picked, shown };
  } catch {
    return { like: [], unlike: [], picked: [], shown: [] };
  }
}

function save(changes) {
  localStorage.setItem(PENDING, JSON.stringify(changes));
}

// Queue likes and unlikes (the latest word on a movie wins) and send them. `picked` says where liked
// picks were shown: [{movie_id, list, model_version, position}].
export function record({ like = [], unlike = [], picked = [] }) {
  const now = pending();
  const liked = new Set([...now.like.filter((id) => !unlike.includes(id)), ...like]);
  const unliked = new Set([...now.unlike.filter((id) => !like.includes(id)), ...unlike]);
  const sources = new Map([...now.picked, ...picked].filter((p) => liked.has(p.movie_id)).map((p) => [p.movie_id, p]));
  save({ ...now, like: [...liked], unlike: [...unliked], picked: [...sources.values()] });
  return flush();
}

// Count the picks of a list the page shows (movie ids, in order), each once per page view; they are
// sent with the next change, or on their own shortly.
export function countShown(list, modelVersion, movieIds) {
  if (!LISTS.has(list) || !modelVersion) return;
  const fresh = movieIds.filter((id) => !seen.has(`${list}|${modelVersion}|${id}`));
  if (!fresh.length) return;
  for (const id of fresh) seen.add(`${list}|${modelVersion}|${id}`);
  const now = pending();
  const group = now.shown.find((g) => g.list === list && g.model_version === modelVersion);
  if (group) group.picks += fresh.length;
  else now.shown.push({ list, model_version: modelVersion, picks: fresh.length });
  save(now);
  clearTimeout(shownTimer);
  shownTimer = setTimeout(flush, SHOWN_WAIT_MS);
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
    if (!queued.like.length && !queued.unlike.length && !queued.shown.length) return true;
    const batch = { like: queued.like.slice(0, PER_REQUEST), unlike: queued.unlike.slice(0, PER_REQUEST) };
    batch.picked = queued.picked.filter((p) => batch.like.includes(p.movie_id) && !batch.unlike.includes(p.movie_id));
    batch.shown = queued.shown.slice(0, SHOWN_GROUPS).map((g) => ({ ...g, picks: Math.min(g.picks, 1000) }));
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
    const like = after.like.filter((id) => !batch.like.includes(id));
    const sent = (g) => batch.shown.find((b) => b.list === g.list && b.model_version === g.model_version)?.picks ?? 0;
    save({
      like,
      unlike: after.unlike.filter((id) => !batch.unlike.includes(id)),
      picked: after.picked.filter((p) => like.includes(p.movie_id)),
      shown: after.shown.map((g) => ({ ...g, picks: g.picks - sent(g) })).filter((g) => g.picks > 0),
    });
  }
}

// Leaving the page: the shown picks that wait go now, in a request the browser finishes after the
// page is gone. They leave the queue first: no answer comes back to a page that is gone, and a count
// lost is better than one counted twice. Likes stay queued for the next page, as ever.
addEventListener("pagehide", () => {
  const now = pending();
  if (forgetting || sending || !now.shown.length || !localStorage.getItem(VISITOR)) return;
  save({ ...now, shown: [] });
  fetch(`${API_URL.replace(/\/$/, "")}/feedback`, {
    method: "POST", keepalive: true,
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify({ visitor_id: visitorId(), shown: now.shown.slice(0, SHOWN_GROUPS) }),
  }).catch(() => {});
});

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
