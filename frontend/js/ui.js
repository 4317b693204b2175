// Small DOM helpers shared by the pages. Text always goes in through textContent, never innerHTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function movieTitle(movie) {
  return movie.year ? `${movie.title} (${movie.year})` : movie.title;
}

export function movieCard(movie, { extra = [], badges = [], link = true } = {}) {
  const title = link
    ? el("a", { href: `similar.html?movie=${movie.movie_id}`, text: movieTitle(movie) })
    : el("span", { text: movieTitle(movie) });
  return el(
    "li",
    { class: "movie", "data-movie-id": movie.movie_id },
    el("div", { class: "movie-title" }, title, ...badges),
    el("div", { class: "genres", text: movie.genres.join(" · ") || "no genre listed" }),
    ...extra,
  );
}

export function setStatus(node, message, kind = "info") {
  node.textContent = message;
  node.className = `status status-${kind}`;
  node.hidden = !message;
}

export function loading(list, label) {
  list.replaceChildren(el("li", { class: "loading", text: `Loading ${label}…` }));
  list.setAttribute("aria-busy", "true");
}

export function fill(list, items, empty) {
  list.removeAttribute("aria-busy");
  list.replaceChildren(...(items.length ? items : [el("li", { class: "empty", text: empty })]));
}

// What the served blend is made of, in words, from its shares ({lightfm, item_item}): what the
// pages say must be what the model does, and validation may give either part a share of 0.
export function describeBlend(shares) {
  const lightfm = Number(shares?.lightfm ?? 0);
  const itemItem = Number(shares?.item_item ?? 0);
  if (lightfm === 0) return "an item-item model that learns which movies people like next, each person's newest likes counting most";
  if (itemItem === 0) return "LightFM, a factorization model";
  return `LightFM ${lightfm} + item-item ${itemItem}, each part's share chosen on held-out likes`;
}

// Search answers (GET /movies) that only come close to the query, for a typo, are led by this
// line; when nothing came back at all, the list says `NO_TITLE`.
export const NO_TITLE = "No title matches, nor any close to it.";
export function didYouMean(found, attrs = {}) {
  return found.match === "closest" && found.items.length
    ? [el("li", { class: "did-you-mean", text: "No title matches. Did you mean:", ...attrs })] : [];
}
