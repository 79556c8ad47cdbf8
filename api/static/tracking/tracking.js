// Ticketflow tracking page: the signature pad, and a photo's size checked before it is sent.
// Everything else works without script.
"use strict";

(function () {
  const input = document.getElementById("photo-file");
  const error = document.getElementById("photo-error");
  if (!input || !error) return;
  input.form.addEventListener("submit", (event) => {
    const file = input.files && input.files[0];
    if (file && file.size > Number(input.dataset.maxBytes)) {
      event.preventDefault();
      error.textContent = input.dataset.tooLarge;
      error.hidden = false;
    }
  });
  input.addEventListener("change", () => {
    error.hidden = true;
  });
})();

(function () {
  const form = document.getElementById("sign-form");
  const pad = document.getElementById("sign-pad");
  if (!form || !pad || typeof DataTransfer === "undefined") {
    return; // no pad without the means to send it: the form stays hidden
  }
  const file = document.getElementById("sign-file");
  const send = document.getElementById("sign-send");
  const ctx = pad.getContext("2d");
  let drawing = false;
  let strokes = 0;

  function reset() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    strokes = 0;
    send.disabled = true;
  }

  function at(event) {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
  }

  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    pad.setPointerCapture(event.pointerId);
    const [x, y] = at(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.1, y + 0.1);
    ctx.stroke();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = at(event);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  function stop() {
    if (!drawing) return;
    drawing = false;
    strokes += 1;
    send.disabled = false;
  }
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  document.getElementById("sign-clear").addEventListener("click", reset);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (strokes === 0) return;
    send.disabled = true;
    pad.toBlob((blob) => {
      const files = new DataTransfer();
      files.items.add(new File([blob], "signature.png", { type: "image/png" }));
      file.files = files.files;
      form.submit();
    }, "image/png");
  });

  reset();
  form.hidden = false;
})();
