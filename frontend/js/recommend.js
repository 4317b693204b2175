// The recommender page: a user's likes, LightFM's picks and popularity's picks side by side.
import { get, loadGenres } from "./api.js";
import { el, fill, loading, movieCard, movieTitle, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);
const form = $("controls");
const status = $("status");

async function loadPicker() {
  try {
    const users = await get("/users", { limit: 12, seed: 0 });
    $("picker").replaceChildren(
      ...users.items.map((u) =>
        el("li", {}, el("button", {
          type: "button", "data-user-id": u.user_id, "aria-pressed": "false",
          onclick: () => { $("user").value = u.user_id; show(); },
        }, `User ${u.user_id}`, el("span", { class: "meta", text: `${u.likes} likes · ${u.top_genres.join(", ")}` }))),
      ),
    );
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

function because(item) {
  if (!item.because_you_liked || item.because_you_liked.length === 0) return null;
  return el("div", { class: "because", text: `Because you liked ${item.because_you_liked.map(movieTitle).join(", ")}` });
}

function render(liked, personalized, popular) {
  const ours = new Set(personalized.items.map((m) => m.movie_id));
  const theirs = new Set(popular.items.map((m) => m.movie_id));
  const both = () => el("span", { class: "badge badge-both", text: "in both", title: "Also in the other list" });
  $("history-total").textContent = `${liked.total} movies, newest first`;
  fill($("history-list"), liked.items.map((m) =>
    movieCard(m, { extra: [el("div", { class: "meta-line", text: `rated ${m.rating} on ${m.rated_at}` })] })), "No liked movies.");
  fill($("personalized-list"), personalized.items.map((m) =>
    movieCard(m, { badges: theirs.has(m.movie_id) ? [both()] : [], extra: [because(m)] })), "Nothing left to recommend in this genre.");
  fill($("popular-list"), popular.items.map((m) =>
    movieCard(m, { badges: ours.has(m.movie_id) ? [both()] : [], extra: [el("div", { class: "meta-line", text: `${m.score} likes` })] })),
    "Nothing left to recommend in this genre.");
}

async function show() {
  const user = $("user").value.trim();
  if (!/^\d+$/.test(user)) {
    setStatus(status, "A user id is a whole number, such as 196.", "error");
    $("user").focus();
    return;
  }
  const k = $("k").value;
  const genre = $("genre").value;
  history.replaceState(null, "", `?user=${user}`);
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
      setStatus(status, `User ${user} is not in the model. Pick one of the sample users below, or try another id.`, "warn");
      return;
    }
    const liked = await get(`/users/${user}/history`, { k: 20 });
    render(liked, personalized, popular);
    if (personalized.fallback === "no_likes") {
      setStatus(status, `User ${user} rated movies but liked none (4 stars or more), so there is nothing to personalize from: both lists are popular movies they have not rated.`, "warn");
      return;
    }
    const overlap = personalized.items.filter((m) => popular.items.some((p) => p.movie_id === m.movie_id)).length;
    setStatus(status, `User ${user}: ${overlap} of ${personalized.items.length} LightFM picks are also popular picks. Model ${personalized.model_version}.`, "info");
  } catch (error) {
    $("results").hidden = true;
    setStatus(status, error.message, "error");
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); show(); });
$("k").addEventListener("change", () => { if ($("user").value) show(); });
$("genre").addEventListener("change", () => { if ($("user").value) show(); });

const initial = new URLSearchParams(location.search).get("user");
await Promise.all([loadGenres($("genre"), status), loadPicker()]);
if (initial) {
  $("user").value = initial;
  show();
}
