"""The web page `genrec serve` answers at `/`: a user id (and an optional rule) in, their history
and picks out with the history items behind each pick (counts, and the score each one's removal costs), through the JSON API (no external scripts or styles, so it works offline and under a strict CSP)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genrec</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 form { display: flex; gap: .5rem; align-items: center; margin-bottom: 1rem; }
 form { flex-wrap: wrap; }
 input[type=text] { padding: .3rem .5rem; width: 14rem; } #rule { width: 24rem; font-family: monospace; }
 .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 2rem; }
 ol { padding-left: 1.6rem; } li { margin: .2rem 0; }
 .id { color: #888; font-size: 85%; } .score { color: #888; font-size: 85%; float: right; }
 .because, .influence { color: #555; font-size: 85%; }
 #error { color: #b00020; min-height: 1.4em; }
</style></head>
<body>
<h1>genrec</h1>
<form id="form">
 <label for="user">User</label> <input type="text" id="user" name="user" placeholder="number or raw id">
 <label for="rule">Rule</label> <input type="text" id="rule" name="rule"
   placeholder='{"where": {"category": "Skin Care"}}' title="JSON; see docs/rules.md">
 <label><input type="checkbox" id="exclude" checked> hide seen items</label>
 <button type="submit">Recommend</button>
</form>
<div id="error"></div>
<div class="cols">
 <section><h2>History <span id="who" class="id"></span></h2><ol id="history"></ol></section>
 <section><h2>Recommendations</h2><ol id="recommendations"></ol></section>
</div>
<script>
function because(row) {
  const div = document.createElement("div");
  div.className = "because";
  div.textContent = "because of " + row.because.map((r) => (r.title || r.raw_id) + " (" + r.count + "\u00d7)").join(", ");
  return div;
}
function influence(row) {
  const div = document.createElement("div");
  div.className = "influence";
  div.textContent = "without " + row.influence.map((r) => (r.title || r.raw_id) + " (\u2212" + r.drop.toFixed(2) + ")").join(", ");
  return div;
}
function fill(list, rows, withScore) {
  list.replaceChildren();
  for (const row of rows) {
    const li = document.createElement("li");
    li.className = "item";
    li.append(row.title || "(no title)", " ");
    const id = document.createElement("span");
    id.className = "id"; id.textContent = row.raw_id;
    li.append(id);
    if (withScore) {
      const score = document.createElement("span");
      score.className = "score"; score.textContent = row.score.toFixed(3);
      li.append(score);
    }
    if (row.because && row.because.length) li.append(because(row));
    if (row.influence && row.influence.length) li.append(influence(row));
    list.append(li);
  }
}
async function show(user, ruleText) {
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    const request = {user: user, top_k: 10, exclude_seen: document.getElementById("exclude").checked, influence: true};
    if (ruleText) {
      try { request.rule = JSON.parse(ruleText); } catch (e) { throw new Error("rule: not JSON: " + e.message); }
    }
    const response = await fetch("/recommend", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(request)});
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    document.getElementById("who").textContent = "user " + body.user + " (" + body.user_raw_id + ")";
    fill(document.getElementById("history"), body.history, false);
    fill(document.getElementById("recommendations"), body.recommendations, true);
    const query = new URLSearchParams({user: user});
    if (ruleText) query.set("rule", ruleText);
    history.replaceState(null, "", "?" + query.toString());
  } catch (e) {
    error.textContent = e.message;
    document.getElementById("recommendations").replaceChildren();
  }
}
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = document.getElementById("user").value.trim();
  if (user) show(user, document.getElementById("rule").value.trim());
});
const params = new URLSearchParams(location.search);
const start = params.get("user"), startRule = params.get("rule") || "";
document.getElementById("rule").value = startRule;
if (start) { document.getElementById("user").value = start; show(start, startRule); }
</script>
</body></html>
"""
