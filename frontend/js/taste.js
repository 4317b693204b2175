// "Your taste": search and like movies; picks for you refresh as your likes change (POST /recommendations).
import { get, loadGenres, post } from "./api.js";
import * as feedback from "./feedback.js";
import * as store from "./likes.js";
import { didYouMean, el, fill, loading, movieCard, movieTitle, NO_TITLE, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
let searchTicket = 0;
let picksTicket = 0;

function because(item) {
  if (!item.because_you_liked || item.because_you_liked.length === 0) return null;
  return el("div", { class: "because", text: `Because you liked ${item.because_you_liked.map(movieTitle).join(", ")}` });
}

function renderLikes() {
  const liked = store.likes();
  $("likes-count").textContent = liked.length ? `${liked.length} movies` : "";
  fill($("likes-list"), liked.map((m) => {
    const label = m.title ? movieTitle(m) : `Movie ${m.movie_id}`;
    return el("li", { class: "movie", "data-movie-id": m.movie_id },
      el("div", { class: "movie-title" }, el("a", { href: `similar.html?movie=${m.movie_id}`, text: label }),
        el("button", { type: "button", class: "remove", "aria-label": `Remove ${label}`, text: "✕",
          onclick: () => store.unlike(m.movie_id) })));
  }), "No likes yet: search a title above, or like movies on the similar-movies page.");
  $("share").value = store.shareUrl();
  $("clear").disabled = liked.length === 0;
}

async function search() {
  const ticket = ++searchTicket;
  const query = $("query").value.trim();
  if (!query) { $("results").replaceChildren(); return; }
  try {
    const found = await get("/movies", { query, limit: 6 });
    if (ticket !== searchTicket) return;
    fill($("results"), [...didYouMean(found), ...found.items.map((m) => movieCard(m, { extra: [store.likeButton(m, el)] }))],
      NO_TITLE);
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

async function refreshPicks() {
  const ticket = ++picksTicket;
  const liked = store.likes().map((m) => m.movie_id);
  loading($("picks-list"), "picks");
  try {
    const answer = await post("/recommendations", {
      liked, k: Number($("k").value), genre: $("genre").value || null, explain: true,
    });
    if (ticket !== picksTicket) return; // a newer change already asked
    $("picks-note").textContent = answer.model === "personalized" ? "personalized" : "popular, until you like a movie";
    const list = answer.model === "personalized" ? "taste" : "popularity";
    const shownAs = (i) => ({ list, model_version: answer.model_version, position: i + 1 });
    fill($("picks-list"), answer.items.map((m, i) => movieCard(m, { extra: [because(m), store.likeButton(m, el, shownAs(i))] })),
      "Nothing left to recommend in this genre.");
    feedback.countShown(list, answer.model_version, answer.items.map((m) => m.movie_id));
    $("picks-list").dataset.liked = answer.liked.join(","); // which likes these picks answer
    nameUnknownTitles(new Set(answer.ignored));
    const n = answer.ignored.length;
    setStatus(status, n ? `${n} of your liked movies ${n === 1 ? "is" : "are"} not in the model, so ${n === 1 ? "it was" : "they were"} left out.` : "", "warn");
  } catch (error) {
    if (ticket !== picksTicket) return;
    $("picks-list").replaceChildren();
    setStatus(status, error.message, "error");
  }
}

// Likes that arrived through a shared link have ids only: look their titles up once.
async function nameUnknownTitles(unknown) {
  const missing = store.likes().filter((m) => !m.title && !unknown.has(m.movie_id)).slice(0, 20);
  if (!missing.length) return;
  const named = await Promise.allSettled(missing.map((m) => get(`/movies/${m.movie_id}/similar`, { k: 1 })));
  const movies = named.filter((r) => r.status === "fulfilled").map((r) => r.value.movie);
  if (!movies.length) return;
  store.describe(movies);
  renderLikes();
}

let searchTimer = 0;
let picksTimer = 0;
$("query").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 150); });
$("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("clear").addEventListener("click", () => store.clear());
// Forget me deletes for good, so it asks first, in the page (a dialog the browser draws is easy to dismiss unread).
$("forget").addEventListener("click", () => {
  setStatus($("forget-status"), "", "info");
  $("forget-confirm").hidden = false;
  $("forget-yes").focus();
});
$("forget-no").addEventListener("click", () => { $("forget-confirm").hidden = true; $("forget").focus(); });
$("forget-yes").addEventListener("click", async () => {
  $("forget-confirm").hidden = true;
  try {
    const deleted = await store.forget();
    setStatus($("forget-status"), `Forgotten: ${deleted} ${deleted === 1 ? "like" : "likes"} deleted from the server, and this browser holds none.`, "info");
  } catch (error) {
    setStatus($("forget-status"), `Could not forget you right now (${error.message}); nothing was deleted. Try again.`, "error");
  }
});
$("share").addEventListener("focus", (event) => event.target.select());
$("k").addEventListener("change", refreshPicks);
$("genre").addEventListener("change", refreshPicks);
store.adoptFromUrl(); // a shared link's likes join this browser's
store.onChange(() => {
  if ($("forget-status").classList.contains("status-info")) setStatus($("forget-status"), "", "info"); // a past action's
  renderLikes();
  history.replaceState(null, "", store.shareUrl());
  clearTimeout(picksTimer);
  picksTimer = setTimeout(refreshPicks, 120);
});

history.replaceState(null, "", store.shareUrl());
renderLikes();
loadGenres($("genre"), status);
refreshPicks();
feedback.flush(); // what an earlier page could not send
