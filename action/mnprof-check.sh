#!/usr/bin/env bash
# The mnprof GitHub Action (action.yml): install mnprof, run `mnprof check` once (--format json), and show its
# result three ways: workflow annotations (stdout), the job summary ($GITHUB_STEP_SUMMARY) and, on a pull request,
# one comment that later pushes update in place (found by its hidden marker). Exits with check's exit code.
#
# Inputs come as environment variables (action.yml sets them; nothing from ${{ }} is pasted into this script):
#   INPUT_ARGS         extra arguments for mnprof check, split on whitespace
#   INPUT_MNPROF       the mnprof to pip install: empty = this action's own checkout; false = none (installed already)
#   INPUT_INSTALL      more to pip install with it (e.g. "." for the project), split on whitespace
#   INPUT_PIP_ARGS     extra arguments for pip install (e.g. the CPU-only torch index), split on whitespace
#   INPUT_PYTHON       the interpreter that installs and runs mnprof
#   INPUT_COMMENT      true: comment on the pull request; anything else: no comment
#   GH_TOKEN           the token gh uses for the comment
# and GitHub's own: GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_EVENT_PATH, GITHUB_REPOSITORY, RUNNER_TEMP, ...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${INPUT_PYTHON:-python3}"
marker="<!-- mnprof-check -->"
work="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mnprof-check.XXXXXX")"
report="$work/check.json"

output() {  # a step output: NAME VALUE (one line)
  printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:-/dev/null}"
}

escape() {  # a workflow command's data: %, CR and LF escaped
  local text="${1//'%'/%25}"
  text="${text//$'\r'/%0D}"
  printf '%s' "${text//$'\n'/%0A}"
}

read -r -a install <<<"${INPUT_INSTALL:-}"
if [[ "${INPUT_MNPROF:-}" != "false" ]]; then
  install=("${INPUT_MNPROF:-${here%/action}}" "${install[@]}")
fi
if [[ ${#install[@]} -gt 0 ]]; then
  read -r -a pip_args <<<"${INPUT_PIP_ARGS:-}"
  echo "::group::pip install ${install[*]}"
  "$python" -m pip install --disable-pip-version-check "${pip_args[@]}" "${install[@]}"
  echo "::endgroup::"
fi

read -r -a args <<<"${INPUT_ARGS:-}"
code=0
"$python" -m mnprof check "${args[@]}" --quiet --format json >"$report" 2>"$work/stderr" || code=$?
cat "$work/stderr" >&2

if [[ $code -le 1 ]] && "$python" "$here/render.py" "$report" --markdown "$work/summary.md" \
  --comment "$work/comment.md" 2>>"$work/stderr"; then
  status=$([[ $code -eq 0 ]] && echo passed || echo failed)
else  # check could not compare (exit 2, or interrupted): what it said is the result
  status=error
  message="$(tail -n 5 "$work/stderr")"
  message="${message:-mnprof check exited $code}"
  echo "::error title=mnprof check could not run (exit $code)::$(escape "$message")"
  fence='```'
  printf '### :x: mnprof check could not run (exit %s)\n\n%s\n%s\n%s\n' "$code" "$fence" "$message" "$fence" \
    >"$work/summary.md"
  cp "$work/summary.md" "$work/comment.md"
  [[ $code -ne 0 ]] || code=2  # a report that cannot be read is never a passing gate
fi
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  cat "$work/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
output exit-code "$code"
output status "$status"
output report "$report"

# One comment per pull request, created once and updated on every later run.
sticky_comment() {  # PR_NUMBER BODY_FILE: create or update the comment; non-zero when gh fails
  local comments="repos/${GITHUB_REPOSITORY}/issues/$1/comments" listed existing response
  jq -n --rawfile body "$2" '{body: $body}' >"$work/payload.json" || return
  listed="$(gh api --paginate "$comments?per_page=100")" || return
  existing="$(jq -rs --arg marker "$marker" \
    '[.[][] | select(.body | startswith($marker))] | first | .id // empty' <<<"$listed")" || return
  if [[ -n "$existing" ]]; then
    response="$(gh api -X PATCH "repos/${GITHUB_REPOSITORY}/issues/comments/$existing" --input "$work/payload.json")" ||
      return
  else
    response="$(gh api -X POST "$comments" --input "$work/payload.json")" || return
  fi
  output comment-id "$(jq -r .id <<<"$response")"
  output comment-url "$(jq -r .html_url <<<"$response")"
}

pr=""
if [[ "${INPUT_COMMENT:-true}" == "true" && -f "${GITHUB_EVENT_PATH:-}" ]]; then
  pr="$(jq -r '.pull_request.number // empty' "$GITHUB_EVENT_PATH")" ||
    echo "::warning title=mnprof check::could not read the event payload (jq); no pull-request comment"
fi
if [[ -n "$pr" ]]; then
  run_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_ID:-}"
  head_sha="$(jq -r '.pull_request.head.sha // empty' "$GITHUB_EVENT_PATH")" || head_sha=""
  {
    printf '%s\n' "$marker"
    cat "$work/comment.md"
    printf '\n<sub>mnprof check at %s: [the run](%s)</sub>\n' "${head_sha:-${GITHUB_SHA:-}}" "$run_url"
  } >"$work/body.md"
  sticky_comment "$pr" "$work/body.md" ||
    echo "::warning title=mnprof check::could not comment on pull request #$pr (a pull request from a fork gets a" \
      "read-only token; the job summary has the result)"
fi

exit "$code"
