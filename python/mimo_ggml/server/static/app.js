// The mimo-ggml web page: send an audio file (dropped, chosen or recorded)
// to /v1/audio/transcriptions as verbose_json, show the transcript with its
// segment times, and download it as srt/vtt (rendered by the server's writers).
"use strict";

const $ = (id) => document.getElementById(id);
let last = null;        // the last verbose_json result
let lastName = "audio"; // its file name, for the downloads

function headers() {
  const key = $("apikey").value.trim();
  localStorage.setItem("mimo-ggml-api-key", key);
  return key ? { Authorization: "Bearer " + key } : {};
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function clock(seconds) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (h ? pad(h) + ":" : "") + pad(m) + ":" + pad(s) + "." + pad(ms % 1000, 3);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) { /* not JSON */ }
  return response.status + " " + response.statusText;
}

async function checkHealth() {
  try {
    const r = await fetch("/health");
    const body = await r.json();
    const asr = (body.models || []).find((m) => m.kind === "asr");
    $("health").textContent = body.status === "ok"
      ? (asr ? "ready: " + asr.id : "no speech model loaded")
      : body.status === "loading" ? "loading the model…" : "error: " + (body.error || body.status);
    if (body.status === "loading") setTimeout(checkHealth, 1000);
  } catch (e) {
    $("health").textContent = "server not reachable";
  }
}

async function transcribe(file, name) {
  lastName = (name || file.name || "audio").replace(/\.[^.]*$/, "") || "audio";
  const form = new FormData();
  form.append("file", file, name || file.name || "audio.wav");
  form.append("model", "mimo-asr");
  form.append("response_format", "verbose_json");
  form.append("timestamp_granularities[]", "segment");
  form.append("language", $("language").value);
  status("Transcribing " + (name || file.name) + "…");
  $("result").hidden = true;
  const started = performance.now();
  let response;
  try {
    response = await fetch("/v1/audio/transcriptions", { method: "POST", body: form, headers: headers() });
  } catch (e) {
    status("The server could not be reached: " + e, true);
    return;
  }
  if (!response.ok) {
    status(await errorText(response), true);
    return;
  }
  last = await response.json();
  const took = (performance.now() - started) / 1000;
  status("Done in " + took.toFixed(1) + " s.");
  show(last);
}

function show(result) {
  $("transcript").textContent = result.text;
  const list = $("segments");
  list.replaceChildren();
  for (const seg of result.segments || []) {
    const li = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = clock(seg.start) + " → " + clock(seg.end);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = seg.text;
    li.append(time, text);
    list.append(li);
  }
  const n = (result.segments || []).length;
  $("meta").textContent = result.duration.toFixed(2) + " s · " + result.language + " · " + n + " segment" + (n === 1 ? "" : "s");
  $("result").hidden = false;
}

async function download(format) {
  if (!last) return;
  const response = await fetch("/ui/subtitles?format=" + format, {
    method: "POST",
    body: JSON.stringify(last),
    headers: Object.assign({ "Content-Type": "application/json" }, headers()),
  });
  if (!response.ok) {
    status(await errorText(response), true);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = lastName + "." + format;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// -- recording: raw PCM from the microphone, sent as a 16-bit WAV file --------
let recorder = null;

function wavBlob(chunks, rate) {
  const n = chunks.reduce((k, c) => k + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let at = 44;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++, at += 2) {
      const x = Math.max(-1, Math.min(1, c[i]));
      view.setInt16(at, x < 0 ? x * 0x8000 : x * 0x7fff, true);
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    const { context, stream, node, chunks } = recorder;
    recorder = null;
    node.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    await context.close();
    button.textContent = "● Record";
    button.classList.remove("recording");
    transcribe(wavBlob(chunks, context.sampleRate), "recording.wav");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    status("No microphone: " + e.message, true);
    return;
  }
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessorNode: plain, no extra module file; enough for a short recording
  const node = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node);
  node.connect(context.destination);
  recorder = { context, stream, node, chunks };
  button.textContent = "■ Stop";
  button.classList.add("recording");
  status("Recording… press Stop to transcribe.");
}

// -- wiring ---------------------------------------------------------------------
const drop = $("drop");
$("apikey").value = localStorage.getItem("mimo-ggml-api-key") || "";
$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = ""; // choosing the same file again fires "change" again
  if (file) transcribe(file);
});
for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) transcribe(e.dataTransfer.files[0]); });
$("record").addEventListener("click", toggleRecording);
$("download-srt").addEventListener("click", () => download("srt"));
$("download-vtt").addEventListener("click", () => download("vtt"));
checkHealth();
