// The recommender page: a user's likes, the model's picks and popularity's picks side by side.
import { get, loadGenres } from "./api.js";
import { describeBlend, el, fill, loading, movieCard, movieTitle, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);
const form = $("controls");
const status = $("status");
const HISTORY_PAGE = 20;
const MAX_USER_ID = 2147483647;
let shown = { user: null, liked: [], total: 0 };

async function loadPicker() {
  try {
    const users = await get("/users", { limit: 12, seed: 0 });
    $("picker").replaceChildren(
      ...users.items.map((u) =>
        el("li", {}, el("button", {
          type: "button", "data-user-id": u.user_id, "aria-pressed": "false",
          onclick: () => { $("user").value = u.user_id; show({ reveal: true }); },
        }, `User ${u.user_id}`, el("span", { class: "meta", text: `${u.likes} likes · ${u.top_genres.join(", ")}` }))),
      ),
    );
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

// Another person's picks: "because they liked", never "you".
function because(item) {
  if (!item.because_you_liked || item.because_you_liked.length === 0) return null;
  return el("div", { class: "because", text: `Because they liked ${item.because_you_liked.map(movieTitle).join(", ")}` });
}

function likedCard(m) {
  // a like the site sent since training (POST /events) may come without a rating
  const how = m.rating == null ? "liked" : `rated ${m.rating}`;
  const since = m.source === "event" ? " (since training)" : "";
  return movieCard(m, { extra: [el("div", { class: "meta-line", text: `${how} on ${m.rated_at}${since}` })] });
}

function renderLiked() {
  const { liked, total } = shown;
  $("history-total").textContent = total > liked.length ? `${liked.length} of ${total}, newest first`
    : `${total} ${total === 1 ? "movie" : "movies"}, newest first`;
  fill($("history-list"), liked.map(likedCard), "No liked movies.");
  $("history-more").hidden = liked.length >= total;
}

async function showMoreLiked() {
  const { user } = shown;
  $("history-more").disabled = true;
  try {
    const page = await get(`/users/${user}/history`, { k: HISTORY_PAGE, offset: shown.liked.length });
    if (shown.user !== user) return; // another user was chosen meanwhile
    shown.liked = shown.liked.concat(page.items);
    shown.total = page.total;
    renderLiked();
  } catch (error) {
    setStatus(status, error.message, "error");
  } finally {
    $("history-more").disabled = false;
  }
}

function render(personalized, popular) {
  const ours = new Set(personalized.items.map((m) => m.movie_id));
  const theirs = new Set(popular.items.map((m) => m.movie_id));
  const both = () => el("span", { class: "badge badge-both", text: "in both", title: "Also in the other list" });
  renderLiked();
  $("personalized-note").textContent = personalized.fallback ? "popular: nothing to personalize from" : "personalized";
  fill($("personalized-list"), personalized.items.map((m) =>
    movieCard(m, { badges: theirs.has(m.movie_id) ? [both()] : [], extra: [because(m)] })), "Nothing left to recommend in this genre.");
  fill($("popular-list"), popular.items.map((m) =>
    movieCard(m, { badges: ours.has(m.movie_id) ? [both()] : [], extra: [el("div", { class: "meta-line", text: `${m.score} likes` })] })),
    "Nothing left to recommend in this genre.");
}

// A user id the API could never know is told apart from one it does not know, in words.
function badUserId(user) {
  if (!/^\d+$/.test(user)) return "A user id is a whole number, such as 196.";
  if (Number(user) > MAX_USER_ID) return `No user has the id ${user}: ids are below ${MAX_USER_ID + 1}. Pick one of the sample users below.`;
  return null;
}

async function show({ reveal = false, push = true } = {}) {
  const user = $("user").value.trim();
  const bad = badUserId(user);
  if (bad) {
    $("results").hidden = true;
    setStatus(status, bad, "error");
    $("user").focus();
    return;
  }
  const k = $("k").value;
  const genre = $("genre").value;
  const url = `?user=${user}`;
  if (push && location.search !== url) history.pushState({ user }, "", url);
  for (const b of document.querySelectorAll("#picker button")) b.setAttribute("aria-pressed", String(b.dataset.userId === user));
  $("results").hidden = false;
  for (const [id, label] of [["history-list", "likes"], ["personalized-list", "picks"], ["popular-list", "popular movies"]]) loading($(id), label);
  setStatus(status, `Loading recommendations for user ${user}…`, "info");
  try {
    const [personalized, popular] = await Promise.all([
      get(`/recommendations/${user}`, { k, genre, explain: "true" }),
      get(`/recommendations/${user}`, { k, genre, model: "popularity" }),
    ]);
    if (personalized.fallback === "unknown_user") {
      $("results").hidden = true;
      setStatus(status, `User ${user} is not in the model: no user has that id. Pick one of the sample users below, or try another id.`, "warn");
      return;
    }
    const liked = await get(`/users/${user}/history`, { k: HISTORY_PAGE });
    shown = { user, liked: liked.items, total: liked.total };
    render(personalized, popular);
    if (reveal) $("results").scrollIntoView({ block: "start" }); // on a phone the columns are below the picker
    if (personalized.fallback === "no_likes") {
      setStatus(status, `User ${user} rated movies but liked none (4 stars or more), so there is nothing to personalize from: both lists are popular movies they have not rated.`, "warn");
      return;
    }
    const popularIds = new Set(popular.items.map((m) => m.movie_id));
    const overlap = personalized.items.filter((m) => popularIds.has(m.movie_id)).length;
    setStatus(status, `User ${user}: ${overlap} of ${personalized.items.length} personalized picks are also popular picks. Model ${personalized.model_version}.`, "info");
  } catch (error) {
    $("results").hidden = true;
    setStatus(status, error.status === 400 ? `${user} is not a user id the model could have. Pick one of the sample users below.` : error.message, "error");
  }
}

function showFromUrl() {
  const wanted = new URLSearchParams(location.search).get("user");
  if (wanted === null) {
    $("results").hidden = true;
    setStatus(status, "", "info");
    return;
  }
  $("user").value = wanted;
  show({ push: false });
}

form.addEventListener("submit", (event) => { event.preventDefault(); show({ reveal: true }); });
$("k").addEventListener("change", () => { if ($("user").value) show(); });
$("genre").addEventListener("change", () => { if ($("user").value) show(); });
$("history-more").addEventListener("click", showMoreLiked);
window.addEventListener("popstate", showFromUrl);

const [model] = await Promise.all([loadGenres($("genre"), status), loadPicker()]);
if (model?.metrics?.served) $("blend").textContent = describeBlend(model.metrics.served.shares);
showFromUrl();
