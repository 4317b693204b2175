// A visitor's liked movies: kept in this browser (localStorage) and carried in a shareable link
// (?liked=1,50,100); each like and unlike the visitor makes is also sent to the API for training
// (feedback.js). Titles are cached beside the ids for display.
import * as feedback from "./feedback.js";

const KEY = "movie-recommender.likes";
const MAX = 500; // what the API accepts
const MAX_ID = 2 ** 31 - 1; // the API's largest movie id
const listeners = new Set();

function read() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((m) => Number.isInteger(m?.movie_id)) : [];
  } catch {
    return [];
  }
}

function write(movies) {
  localStorage.setItem(KEY, JSON.stringify(movies.slice(-MAX))); // oldest first: past the API's limit the oldest go
  for (const button of document.querySelectorAll("button[data-like]")) paint(button);
  for (const listener of listeners) listener(movies);
}

function paint(button) {
  const on = isLiked(button.dataset.like);
  button.textContent = on ? "♥ Liked" : "♡ Like";
  button.setAttribute("aria-pressed", String(on));
  button.setAttribute("aria-label", `${on ? "Unlike" : "Like"} ${button.dataset.title}`);
}

export function likes() {
  return read();
}

export function isLiked(movieId) {
  return read().some((m) => m.movie_id === Number(movieId));
}

// `shownAs`: where the movie was shown as a pick ({list, model_version, position}), when it was one.
export function like(movie, shownAs = null) {
  if (isLiked(movie.movie_id)) return;
  write([...read(), { movie_id: movie.movie_id, title: movie.title, year: movie.year ?? null, genres: movie.genres ?? [] }]);
  feedback.record({ like: [movie.movie_id], picked: shownAs ? [{ movie_id: movie.movie_id, ...shownAs }] : [] });
}

export function unlike(movieId) {
  write(read().filter((m) => m.movie_id !== Number(movieId)));
  feedback.record({ unlike: [Number(movieId)] });
}

// Cache titles (and years, genres) for liked ids, without counting as a change of likes.
export function describe(movies) {
  const byId = new Map(movies.map((m) => [m.movie_id, m]));
  const described = read().map((m) => {
    const d = byId.get(m.movie_id);
    return d ? { movie_id: d.movie_id, title: d.title, year: d.year ?? null, genres: d.genres ?? [] } : m;
  });
  localStorage.setItem(KEY, JSON.stringify(described));
}

export function clear() {
  const ids = read().map((m) => m.movie_id);
  write([]);
  if (ids.length) feedback.record({ unlike: ids });
}

// "Forget me": the API deletes this visitor's likes, then this browser forgets them too.
export async function forget() {
  const deleted = await feedback.forget();
  localStorage.removeItem(KEY);
  write([]);
  return deleted;
}

export function onChange(listener) {
  listeners.add(listener);
}

// Ids from a shared link join what is stored (the visitor's own likes stay), and the new ones are
// sent as likes, as if made here. Ids outside the API's range (1 to 2^31-1) are ignored. Those
// without a cached title get a placeholder. Returns the ids added.
export function adoptFromUrl(search = location.search) {
  const raw = new URLSearchParams(search).get("liked");
  if (raw === null) return [];
  const ids = raw.split(",").map((s) => s.trim()).filter((s) => /^\d{1,10}$/.test(s)).map(Number)
    .filter((id) => id >= 1 && id <= MAX_ID);
  const current = read();
  const have = new Set(current.map((m) => m.movie_id));
  const added = [...new Set(ids)].filter((id) => !have.has(id)).slice(0, Math.max(0, MAX - current.length));
  if (!added.length) return [];
  write([...current, ...added.map((id) => ({ movie_id: id, title: null, year: null, genres: [] }))]);
  feedback.record({ like: added });
  return added;
}

// The page's address with the likes as ?liked=1,50,100 (commas as they are: readable, and what the README shows).
export function shareUrl() {
  const url = new URL(location.href);
  url.search = "";
  const ids = read().map((m) => m.movie_id);
  return ids.length ? `${url.toString()}?liked=${ids.join(",")}` : url.toString();
}

// A like toggle for any movie card; every toggle on the page repaints when the likes change. A pick's
// toggle says where it was shown (`shownAs`, as `like` takes it).
export function likeButton(movie, el, shownAs = null) {
  const button = el("button", { type: "button", class: "like", "data-like": movie.movie_id, "data-title": movie.title });
  button.addEventListener("click", () => { if (isLiked(movie.movie_id)) unlike(movie.movie_id); else like(movie, shownAs); });
  paint(button);
  return button;
}
