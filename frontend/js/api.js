// The API client: one fetch wrapper that turns every failure into an ApiError with a message a
// person can read (the API's own error body when there is one).
import { API_URL } from "../config.js";
import { el, setStatus } from "./ui.js";

export class ApiError extends Error {
  constructor(message, { status = 0, code = "unreachable" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function get(path, params = {}) {
  const url = new URL(API_URL.replace(/\/$/, "") + path);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return request(url, { headers: { Accept: "application/json" } });
}

export async function post(path, body) {
  const url = new URL(API_URL.replace(/\/$/, "") + path);
  return request(url, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(`The recommendation API at ${API_URL} cannot be reached. Is it running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.error ? body.error : { code: "http", message: response.statusText };
    throw new ApiError(detail.message, { status: response.status, code: detail.code });
  }
  return body;
}

// The model's genres as options of a <select>; a failure is shown in `status`. Returns the model
// card (GET /model), or null when it could not be read.
export async function loadGenres(select, status) {
  try {
    const model = await get("/model");
    for (const genre of model.genres) select.append(el("option", { value: genre, text: genre }));
    return model;
  } catch (error) {
    setStatus(status, error.message, "error");
    return null;
  }
}
