// The similar-movies page: search with suggestions, the chosen movie, and a grid to pivot through.
import { get } from "./api.js";
import { countShown } from "./feedback.js";
import { likeButton } from "./likes.js";
import { didYouMean, el, fill, loading, movieCard, movieTitle, NO_TITLE, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);
const input = $("query");
const box = $("suggestions");
const status = $("status");
let active = -1;
let pending = 0;

function closeSuggestions() {
  box.hidden = true;
  input.setAttribute("aria-expanded", "false");
  active = -1;
}

async function suggest() {
  const ticket = ++pending;
  try {
    const found = await get("/movies", { query: input.value, limit: 8 });
    if (ticket !== pending) return; // a newer keystroke already asked
    box.replaceChildren(
      ...didYouMean(found, { role: "presentation" }),
      ...found.items.map((m, i) =>
        el("li", { role: "option", id: `option-${i}`, "data-movie-id": m.movie_id, "aria-selected": "false",
          onmousedown: (event) => { event.preventDefault(); choose(m.movie_id); } }, movieTitle(m))));
    if (found.items.length === 0) box.replaceChildren(el("li", { class: "empty", text: NO_TITLE }));
    box.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

function move(step) {
  const options = [...box.querySelectorAll('[role="option"]')];
  if (!options.length) return;
  active = (active + step + options.length) % options.length;
  options.forEach((o, i) => o.setAttribute("aria-selected", String(i === active)));
  input.setAttribute("aria-activedescendant", options[active].id);
}

// Each movie chosen is a step in the browser's history: Back returns to the movie you came from.
async function choose(movieId, { push = true } = {}) {
  closeSuggestions();
  const url = `?movie=${movieId}`;
  if (push && location.search !== url) history.pushState({ movie: String(movieId) }, "", url);
  loading($("similar-list"), "similar movies");
  setStatus(status, "Loading similar movies…", "info");
  try {
    const found = await get(`/movies/${movieId}/similar`, { k: 12 });
    const m = found.movie;
    input.value = movieTitle(m);
    $("chosen").hidden = false;
    $("chosen").replaceChildren(
      el("h2", { text: movieTitle(m) }),
      el("div", { class: "genres", text: m.genres.join(" · ") }),
      el("div", { class: "meta-line", text: `Movie ${m.movie_id} · liked by ${m.likes} · model ${found.model_version}` }),
      likeButton(m, el),
    );
    if (found.basis === "genres") {
      $("chosen").append(el("p", { class: "meta-line", text: "Nobody liked this movie in the training data, so the model learned nothing about it: these are liked movies that share most of its genres." }));
    }
    $("similar-title").hidden = false;
    const shownAs = (i) => ({ list: "similar", model_version: found.model_version, position: i + 1 });
    fill($("similar-list"), found.items.map((s, i) => {
      const pct = Math.max(0, Math.round(s.similarity * 100));
      const bar = el("div", { class: "bar", role: "img", "aria-label": `similarity ${s.similarity.toFixed(2)}` }, el("span"));
      bar.firstChild.style.width = `${pct}%`;
      const card = movieCard(s, { extra: [el("div", { class: "meta-line score", text: `similarity ${s.similarity.toFixed(3)}` }), bar, likeButton(s, el, shownAs(i))] });
      const link = card.querySelector("a");
      link.addEventListener("click", (event) => { event.preventDefault(); choose(s.movie_id); });
      return card;
    }), "No similar movies.");
    countShown("similar", found.model_version, found.items.map((s) => s.movie_id));
    setStatus(status, "", "info");
  } catch (error) {
    $("chosen").hidden = true;
    $("similar-title").hidden = true;
    $("similar-list").replaceChildren();
    const known = { 404: `No movie with id ${movieId} is in the model. Search for a title above.`,
      400: `${movieId} is not a movie id the model could have. Search for a title above.` };
    setStatus(status, known[error.status] ?? error.message, known[error.status] ? "warn" : "error");
  }
}

let timer = 0;
input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 150); });
input.addEventListener("focus", () => { if (box.hidden) suggest(); });
input.addEventListener("blur", () => setTimeout(closeSuggestions, 100));
input.addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown") { event.preventDefault(); if (box.hidden) suggest(); else move(1); }
  else if (event.key === "ArrowUp") { event.preventDefault(); move(-1); }
  else if (event.key === "Escape") closeSuggestions();
  else if (event.key === "Enter") {
    event.preventDefault();
    const options = [...box.querySelectorAll('[role="option"]')];
    const pick = options[Math.max(active, 0)];
    if (pick) choose(pick.dataset.movieId);
  }
});
$("search-form").addEventListener("submit", (event) => event.preventDefault());

function showFromUrl() {
  const wanted = new URLSearchParams(location.search).get("movie");
  if (wanted === null) {
    $("chosen").hidden = true;
    $("similar-title").hidden = true;
    $("similar-list").replaceChildren();
    input.value = "";
    setStatus(status, "", "info");
  } else if (/^\d+$/.test(wanted)) {
    choose(wanted, { push: false });
  } else {
    setStatus(status, `"${wanted}" is not a movie id: a movie id is a whole number, such as 50. Search for a title above.`, "warn");
  }
}

window.addEventListener("popstate", showFromUrl);
showFromUrl();
