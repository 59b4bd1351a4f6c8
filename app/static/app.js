// The page: a drawing pad and an image upload feed POST /predict; the answer (digit, confidence, the ten
// probabilities, the 28×28 image the model saw) or the API's error is shown. Plain ES module, no framework.

const $ = (selector) => document.querySelector(selector);
const pad = $("#pad");
const ink = pad.getContext("2d");
const preview = $("#upload");
const PREDICT_URL = "predict?include_input=true"; // relative: works behind a proxy that adds a path prefix
const THROTTLE_MS = 150; // while drawing, at most one prediction per this; never two requests in flight
const HINT = "Draw a digit to see what the model reads.";

let source = null; // () => Promise<Blob> of the current input, or null when there is nothing to classify
let serial = 0; // bumped when the input is replaced (clear, upload): answers for an older input are dropped
let busy = false; // a request is in flight...
let again = false; // ...and the input changed since it was sent: send the latest when it returns
let timer = null;

// ------------------------------------------------------------------ the drawing pad

const drawing = () => new Promise((resolve) => pad.toBlob(resolve, "image/png"));
let pen = null; // the id of the pointer drawing now

function clearPad() {
  ink.fillStyle = "#fff"; // dark ink on white paper, as people draw; the service handles either polarity
  ink.fillRect(0, 0, pad.width, pad.height);
  Object.assign(ink, { strokeStyle: "#111", lineWidth: pad.width / 14, lineCap: "round", lineJoin: "round" });
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || pen !== null) return;
  if (source !== drawing) startOver(drawing); // leave an upload for a fresh pad
  pad.setPointerCapture(event.pointerId);
  pen = event.pointerId;
  ink.beginPath(); // one path per stroke, stroked whole on each move: smooth joins, no seams
  ink.moveTo(...padPoint(event));
  ink.lineTo(...padPoint(event)); // a dot
  ink.stroke();
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== pen) return;
  for (const each of event.getCoalescedEvents?.() ?? [event]) ink.lineTo(...padPoint(each));
  ink.stroke();
  timer ??= setTimeout(predict, THROTTLE_MS);
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, (event) => {
    if (event.pointerId !== pen) return;
    pen = null;
    predict();
  });
}

$("#clear").addEventListener("click", () => startOver(null));

// ------------------------------------------------------------------ uploads: file input, camera, drop, paste

function useFile(file) {
  if (!file) return;
  startOver(() => Promise.resolve(file));
  URL.revokeObjectURL(preview.src);
  preview.alt = `Preview of ${file.name}`;
  preview.src = URL.createObjectURL(file);
  pad.hidden = true;
  preview.hidden = false;
  predict();
}

preview.addEventListener("error", () => (preview.alt = "No preview: the browser cannot show this file"));

for (const input of [$("#file"), $("#camera")]) {
  input.addEventListener("change", () => {
    useFile(input.files[0]);
    input.value = ""; // choosing the same file again is a change too
  });
}

document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  useFile(event.dataTransfer.files[0]);
});
document.addEventListener("paste", (event) => {
  const [file] = event.clipboardData.files;
  if (file) {
    event.preventDefault();
    useFile(file);
  }
});

// ------------------------------------------------------------------ predictions, one request at a time

function startOver(newSource) {
  serial += 1;
  source = newSource;
  clearTimeout(timer);
  timer = null;
  clearPad();
  pad.hidden = false;
  preview.hidden = true;
  showAnswer(null);
  showError("");
}

async function predict() {
  clearTimeout(timer);
  timer = null;
  if (busy) {
    again = true;
    return;
  }
  if (!source) return;
  setBusy(true);
  const sent = serial;
  try {
    const form = new FormData(); // multipart: a file that is no image gets the decoder's plain-words 415
    const blob = await source();
    form.append("file", blob, blob.name ?? "drawing.png"); // an upload keeps its own name
    const response = await fetch(PREDICT_URL, { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (sent !== serial) return;
    if (response.ok) showAnswer(body);
    else showError(`The server could not classify this image: ${describe(body.detail, response)}`);
  } catch (error) {
    if (sent === serial) showError(`The server could not be reached (${error.message}). Try again.`);
  } finally {
    setBusy(false);
    if (again) {
      again = false;
      predict();
    }
  }
}

function setBusy(value) {
  busy = value;
  $("#result").ariaBusy = String(value); // also tells tests when the latest answer is in
}

function describe(detail, response) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((item) => item.msg).join("; ");
  return `HTTP ${response.status} ${response.statusText}`;
}

// ------------------------------------------------------------------ showing the answer

const percent = (p) => (p > 0.999 ? "> 99.9 %" : `${(100 * p).toFixed(1)} %`);
const bars = Array.from({ length: 10 }, (_, digit) => {
  const item = document.createElement("li");
  item.innerHTML = `<span class="bar"></span><span class="label">${digit}</span>`;
  $("#bars").append(item);
  return item;
});

function showAnswer(answer) {
  if (answer) showError("");
  $("#digit").textContent = answer ? answer.digit : "";
  $("#confidence").textContent = answer ? `${percent(answer.confidence)} sure` : source ? "" : HINT;
  // is_digit: false when the service's gate says the upload is not one digit; null when the model has no gate.
  const notDigit = answer?.is_digit === false;
  $("#not-digit").hidden = !notDigit;
  $("#result").classList.toggle("not-digit", notDigit);
  bars.forEach((item, digit) => {
    const p = answer ? answer.probabilities[digit] : 0;
    item.querySelector(".bar").style.transform = `scaleY(${p})`;
    item.title = `${digit}: ${percent(p)}`;
    item.classList.toggle("top", answer?.digit === digit);
  });
  const seen = $("#seen");
  seen.hidden = !answer?.input_image;
  if (answer?.input_image) seen.src = answer.input_image;
  if (answer?.model) showModel(answer.model);
}

function showError(message) {
  $("#error").textContent = message;
  if (message) showAnswer(null);
}

function showModel(model) {
  $("#model").textContent = `Model: ${model.name}, version ${model.version}`;
}

clearPad();
showAnswer(null);
fetch("model")
  .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`HTTP ${response.status}`))))
  .then(showModel)
  .catch((error) => ($("#model").textContent = `Model: unavailable (${error.message})`));
