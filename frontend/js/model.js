// The model page: version, data, the served blend against its parts and popularity, with precision@k / recall@k charts.
import { get } from "./api.js";
import { describeBlend, el, setStatus } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { served: "#1864ab", lightfm: "#2b8a3e", item_item: "#c2255c", item_item_unordered: "#e64980", popularity: "#a15c00", ease: "#5f3dc4" };
const MODELS = ["served", "lightfm", "item_item", "item_item_unordered", "popularity", "ease"];
const NAMES = { served: "served blend", lightfm: "LightFM", item_item: "item-item", item_item_unordered: "item-item, order ignored", popularity: "popularity", ease: "EASE" };
const DASHES = { served: "", lightfm: "6 3", item_item: "2 3", item_item_unordered: "8 3 2 3", popularity: "10 4", ease: "4 2 1 2" };

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A line chart with its legend below the plot, never on the curves: each line's colour, dash and name.
function chart(title, ks, series) {
  const names = Object.keys(series);
  const legendRows = Math.ceil(names.length / 2);
  const w = 420, plot = 260, left = 48, right = 12, top = 28, bottom = 36, h = plot + 8 + legendRows * 16;
  const max = Math.max(...Object.values(series).flat(), 0.01) * 1.1;
  const x = (k) => left + ((k - ks[0]) / (ks[ks.length - 1] - ks[0])) * (w - left - right);
  const y = (v) => top + (1 - v / max) * (plot - top - bottom);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": title });
  root.append(svg("text", { x: left, y: 18, "font-size": 13, "font-weight": 600 }, title));
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    root.append(svg("line", { x1: left, x2: w - right, y1: y(v), y2: y(v), stroke: "#e5e5ea" }));
    root.append(svg("text", { x: left - 6, y: y(v) + 4, "font-size": 10, "text-anchor": "end" }, v.toFixed(2)));
  }
  for (const k of ks.filter((k) => k === 1 || k % 5 === 0)) {
    root.append(svg("text", { x: x(k), y: plot - bottom + 14, "font-size": 10, "text-anchor": "middle" }, String(k)));
  }
  root.append(svg("text", { x: (left + w - right) / 2, y: plot - 6, "font-size": 11, "text-anchor": "middle" }, "k"));
  const legend = svg("g", { class: "legend" });
  names.forEach((name, n) => {
    const points = series[name].map((v, i) => `${x(ks[i])},${y(v)}`).join(" ");
    const line = { fill: "none", stroke: COLORS[name], "stroke-width": 2, "stroke-dasharray": DASHES[name] };
    root.append(svg("polyline", { points, ...line }));
    const lx = left + (n % 2) * 180, ly = plot + 8 + Math.floor(n / 2) * 16;
    legend.append(svg("line", { x1: lx, x2: lx + 28, y1: ly, y2: ly, ...line }));
    legend.append(svg("text", { x: lx + 34, y: ly + 4, "font-size": 11, fill: "#1d1d24" }, NAMES[name] ?? name));
  });
  root.append(legend);
  return root;
}

function series(curves, name) {
  return Object.fromEntries(MODELS.filter((m) => curves[m]).map((m) => [m, curves[m][name]]));
}

function fact(term, value) {
  return [el("dt", { text: term }), el("dd", { text: String(value) })];
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
const LIST_NAMES = { personalized: "personalized", popularity: "popular", similar: "similar movies", taste: "your taste" };

// How the site's picks did, per model that served them (training.online): newest first, each model's
// lists under its pooled row, and the newest against the one before, with the uncertainty of both.
function renderOnline(online, createdAt) {
  const rows = [];
  for (const v of online.versions) {
    const cells = (m) => [m.picks, m.liked, pct(m.like_through), m.ci95 ? `${pct(m.ci95[0])} – ${pct(m.ci95[1])}` : "–", m.visitors]
      .map((x) => el("td", { text: String(x) }));
    rows.push(el("tr", { class: "online-model" }, el("th", { scope: "row", text: v.model_version }), el("td", { text: "all lists" }), ...cells(v)));
    for (const [list, m] of Object.entries(v.lists)) {
      rows.push(el("tr", {}, el("th", { scope: "row", class: "sub", text: "" }), el("td", { text: LIST_NAMES[list] ?? list }), ...cells(m)));
    }
  }
  $("online").tBodies[0].replaceChildren(...rows);
  const asOf = `As of this model's training (${createdAt ?? "unknown"}): of the picks each earlier model showed visitors, the share they liked, each pick counted once per page view.`;
  const c = online.change;
  let verdict = online.versions.length ? ` Fewer than ${online.min_picks} picks shown by two models: no comparison yet.` : " No picks had been shown yet.";
  if (c) {
    const signed = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)}`;
    const words = { better: "more often than", worse: "less often than", "within noise": "about as often as" };
    const noise = c.verdict === "within noise" ? ", within noise" : "";
    verdict = ` Visitors liked the picks of model ${c.newer} ${words[c.verdict]} those of the model before it, ${c.older}: ${signed(c.difference)} points (95% ${signed(c.ci95[0])} to ${signed(c.ci95[1])})${noise}.`;
  }
  const lone = online.versions.some((v) => !v.ci95) ? " An interval (–) needs picks shown to two visitors at least." : "";
  $("online-note").textContent = asOf + verdict + lone;
  $("online-section").hidden = false;
}

async function main() {
  setStatus($("status"), "Loading the model card…", "info");
  let model;
  try {
    model = await get("/model");
  } catch (error) {
    setStatus($("status"), error.message, "error");
    return;
  }
  const d = model.data;
  const p = model.params;
  const split = model.metrics.split;
  const ease = model.metrics.ease ?? {};
  const served = model.metrics.served;
  if (served) $("blend").textContent = describeBlend(served.shares);
  $("facts").replaceChildren(
    ...fact("Version", model.model_version),
    ...fact("Created", model.created_at ?? "unknown"),
    ...fact("Data", `${d.users} users, ${d.movies} movies, ${d.ratings} ratings (${d.positives} liked, rating ≥ ${d.min_rating})`),
    ...fact("Format", d.format),
    ...(d.placeholders?.movies?.length ? fact("Left out", `${d.placeholders.movies.length === 1 ? "movie" : "movies"} ${d.placeholders.movies.join(", ")} (${d.placeholders.ratings} ratings): ${d.placeholders.why}`) : []),
    ...(d.events ? fact("Site users' events", `${d.events.events} events of ${d.events.users} ${d.events.users === 1 ? "user" : "users"} (POST /events) trained as their own ratings, ${d.events.new_users} of them new users; ${d.events.forgotten_users} forgotten ${d.events.forgotten_users === 1 ? "user" : "users"}, whose ${d.events.ratings_forgotten} ratings are left out`) : []),
    ...(d.visitors?.left_out ? fact("Site visitors", `${d.visitors.left_out.likes} likes from ${d.visitors.left_out.visitors} ${d.visitors.left_out.visitors === 1 ? "visitor" : "visitors"} were left out of this model: with them, a validation figure moved past the quality gate's band`)
      : d.visitors ? fact("Site visitors", `${d.visitors.likes} likes from ${d.visitors.visitors} ${d.visitors.visitors === 1 ? "visitor" : "visitors"} of this site trained as users (no visitor is served as a user)`) : []),
    ...fact("Model", `LightFM ${p.loss}, ${p.components} components, ${p.epochs} epochs, learning rate ${p.learning_rate}, item features: ${p.item_features}`),
    ...fact("Split", `${split.name}: ${split.description}`),
    ...fact("Masked", split.seen_masked),
    ...(served ? fact("Served", `${served.shares.lightfm} × LightFM + ${served.shares.item_item} × item-item, ${served.normalization}; chosen on the validation split`) : []),
    ...(served?.visitor_shares ? fact("Served to visitors", `${served.visitor_shares.lightfm} × LightFM (folded in) + ${served.visitor_shares.item_item} × item-item; chosen on users left out of a fit and folded in`) : []),
    ...(served ? fact("Item-item", `${served.item_item.method}, a = ${served.item_item.a ?? 1} (the rest learns which movies are liked next), λ = ${served.item_item.lambda}, ${served.item_item.weights} weights (${served.item_item.dtype})`) : []),
    ...(served ? fact("Order", served.item_item.recency_decay ? `a user's k-th newest like weighs exp(−k / ${served.item_item.recency_decay}); a visitor's likes count in the order they were made` : "ignored: every like weighs the same") : []),
    ...fact("EASE (dense, a yardstick)", ease.lambda !== undefined ? `λ = ${ease.lambda}, chosen on the validation split` : `not scored: ${ease.skipped ?? "not run"}`),
  );
  const m = model.metrics.models;
  const cell = (value) => el("td", { text: value === undefined ? "–" : value.toFixed(4) });
  $("metrics").tBodies[0].replaceChildren(...Object.keys(m.lightfm).filter((k) => k !== "users").map((name) => {
    const ours = (m.served ?? m.lightfm)[name], base = m.popularity[name];
    return el("tr", {}, el("th", { scope: "row", text: name }), cell(m.served?.[name]), cell(m.lightfm[name]),
      cell(m.item_item?.[name]), cell(m.item_item_unordered?.[name]), cell(base), cell(m.ease?.[name]),
      el("td", { text: base ? `${(ours / base).toFixed(2)}×` : "–" }));
  }));
  const folded = model.metrics.fold_in;
  if (folded) {
    const names = {
      fold_in: "served, folded in (the visitor's likes, no retraining)", trained_in: "served, trained on them (upper bound)",
      fold_in_lightfm: "LightFM alone, folded in", trained_in_lightfm: "LightFM alone, trained on them", popularity: "popularity",
    };
    $("fold-in-note").textContent = `${folded.users} users were left out of a separate fit; their earlier likes were folded in (${folded.method}) and their later likes had to be found, seen movies masked.`;
    $("fold-in").tBodies[0].replaceChildren(...Object.entries(folded.models).map(([name, m]) =>
      el("tr", {}, el("th", { scope: "row", text: names[name] ?? name }),
        ...["precision@10", "recall@10", "ndcg@10"].map((k) => el("td", { text: m[k].toFixed(4) })))));
  }
  const replayed = model.metrics.replay;
  if (replayed) {
    const lift = replayed.hr_lift ? ` Served at once, the next like is among the 10 picks ${replayed.hr_lift.toFixed(2)} times as often.` : "";
    $("replay-note").textContent = `${replayed.arrivals} held-out likes of ${replayed.users} users arrived one at a time, in the order they were made; before each, the served model picked 10, and the question is whether that next like was among them. Seen movies and the likes already arrived are masked either way.${lift}`;
    const rows = [["frozen at training", replayed.static], ["each like served as it arrives", replayed.realtime]];
    const refold = replayed.refold;
    if (refold) {  // LightFM's side alone: the trained vector, and refolded with each like
      rows.push(["LightFM alone, frozen", refold.lightfm_alone.static],
        [`LightFM alone, refolded with each like (weight ${refold.weight}, chosen on validation)`, refold.lightfm_alone.refolded]);
    }
    $("replay").tBodies[0].replaceChildren(...rows.map(([name, m]) =>
      el("tr", {}, el("th", { scope: "row", text: name }),
        ...["hr@10", "ndcg@10"].map((k) => el("td", { text: m[k].toFixed(4) })))));
    $("replay-section").hidden = false;
  }
  if (model.metrics.online) renderOnline(model.metrics.online, model.created_at);
  const c = model.metrics.curves;
  $("charts").replaceChildren(
    chart("precision@k", c.k, series(c, "precision")),
    chart("recall@k", c.k, series(c, "recall")),
  );
  $("card").hidden = false;
  setStatus($("status"), `${split.evaluated_users} users evaluated on the ${split.name} split, k = ${model.metrics.k}.`, "info");
}

main();
