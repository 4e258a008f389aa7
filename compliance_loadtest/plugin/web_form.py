"""The web UI's start form, told what the library adds: a profile's stages, and benchmark users unticked.

Locust's form lists the shipped load profiles in the `load_profile` drop-down (`options.ProfileChoices`)
but shows nothing of what a profile does, and its class picker ticks every user class, the benchmark
users too, which a normal run leaves out (`benchmarks.on_init`). A small script, added to the page, shows
the chosen profile's stages under the drop-down and unticks the benchmark users once, with a tooltip
saying why; ticking them again runs them. It reads only the data given here, and changes no request.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from compliance_loadtest.errors import LoadTestError
from compliance_loadtest.plugin.benchmarks import is_benchmark_class
from compliance_loadtest.profiles import Profile, available_profiles, load_profile

BENCHMARK_NOTE = (
    "Microbenchmark: left out of a normal run (unticked); tick it to run the benchmarks, "
    "which end the run when their rounds are done"
)

MAX_STAGES_SHOWN = 8

FORM_SCRIPT = """<script>
(() => {
  const data = %s;
  let shownFor = null;
  const unticked = new Set();
  const update = () => {
    const input = document.querySelector("[name=loadProfile]");
    if (input) {
      const box = input.closest(".MuiFormControl-root") || input.parentElement;
      let note = document.getElementById("profile-stages");
      if (!note) {
        note = document.createElement("p");
        note.id = "profile-stages";
        note.style.cssText = "margin: 4px 0 12px; font-size: 0.85rem; opacity: 0.8";
        box.after(note);
      }
      if (shownFor !== input.value) {
        shownFor = input.value;
        note.textContent = data.profiles[input.value] || data.none;
      }
    }
    // One click a pass: the picker's click handler sees the selection of its last render, so a
    // second click before the next render would tick the first class again.
    let clicked = false;
    document.querySelectorAll("tr").forEach((tr) => {
      const cells = tr.querySelectorAll("td");
      if (cells.length < 2 || !data.benchmarks.includes(cells[1].textContent.trim())) return;
      const name = cells[1].textContent.trim();
      cells[1].title = data.note;
      const box = cells[0].querySelector("input[type=checkbox]");
      if (box && !unticked.has(name) && !clicked) {
        unticked.add(name);
        if (box.checked) {
          cells[0].click();
          clicked = true;
        }
      }
    });
  };
  setInterval(update, 300);
})();
</script>"""


def describe_stages(profile: Profile) -> str:
    """One line per profile: its stages as the web UI shows them before the start."""
    parts = []
    for s in profile.stages:
        if s.arrival is not None:
            rate = f"{s.arrival.rate:g}" + (
                f"->{s.arrival.rate_end:g}" if s.arrival.rate_end != s.arrival.rate else ""
            )
            parts.append(f"{s.duration:g} s at {rate} iterations/s (up to {s.users} users)")
        else:
            parts.append(f"{s.duration:g} s at {s.users} users (+{s.spawn_rate:g}/s)")
    if len(parts) > MAX_STAGES_SHOWN:
        parts = [*parts[:MAX_STAGES_SHOWN], f"... {len(parts) - MAX_STAGES_SHOWN} more"]
    total = sum(s.duration for s in profile.stages)
    n = len(profile.stages)
    return f"{profile.name}: {n} stage{'s' if n != 1 else ''}, {total:g} s: " + "; ".join(parts)


def profile_lines() -> dict[str, str]:
    """The stages of every shipped profile that loads (a broken one is refused at the start anyway)."""
    lines = {}
    for name in available_profiles():
        try:
            lines[name] = describe_stages(load_profile(name))
        except LoadTestError:
            continue
    return lines


def on_init(environment: Any, web_ui: Any = None, **_kw: Any) -> None:
    """Add the form's script to the web UI's page (an `init` listener; nothing without a web UI)."""
    if web_ui is None:
        return
    classes = getattr(environment, "available_user_classes", None) or {
        c.__name__: c for c in environment.user_classes
    }
    data = {
        "profiles": profile_lines(),
        "benchmarks": sorted(name for name, cls in classes.items() if is_benchmark_class(cls)),
        "note": BENCHMARK_NOTE,
        "none": "No load profile: the number of users, ramp up and run time of the form apply.",
    }
    script = FORM_SCRIPT % json.dumps(data).replace("</", "<\\/")

    def add_script(response: Response) -> Response:
        if request.path == "/" and response.mimetype == "text/html" and response.status_code == 200:
            html = response.get_data(as_text=True)
            response.set_data(html.replace("</body>", script + "</body>", 1))
        return response

    web_ui.app.after_request(add_script)
