#!/usr/bin/env bash
# Proof in a real container: the Gradescope autograder of day 1, set up and run as Gradescope does, with no network.
#
#   DOCKER_HOST=unix:///path/docker.sock bash bench/autograder_docker.sh BASE_IMAGE WHEELHOUSE OUT
#
# BASE_IMAGE: an image with python3 and python3-venv (with no registry reachable, one made by
#   debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm rootfs && tar -C rootfs -c . | docker import - NAME)
# WHEELHOUSE: a folder of wheels for torch and the course's dependencies (pip download torch==2.13.0 COURSE.whl -d DIR),
#   which pip reads instead of an index, so setup.sh runs with --network none too.
# OUT: where the autograder, the submissions and their results.json are written.
# 1. `python -m checks autograder --day 1 --platform gradescope` builds autograder.zip;
# 2. a container unpacks it into /autograder/source (python's zipfile keeps no modes: run_autograder is made
#    executable, as unzip would) and runs setup.sh (as Gradescope's image build does); it is committed;
# 3. each submission runs in a fresh container of that image, `--network none`, with /autograder/submission holding it:
#    `honest` (the solutions), `partial` (two exercises wrong or unwritten), `hostile` (forges results.json, exits).
set -euo pipefail
base=$1 wheelhouse=$(realpath "$2") out=$(realpath -m "$3")
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
python -m checks autograder --day 1 --platform gradescope --out "$out/autograder" >/dev/null
docker rm -f course-autograder-setup >/dev/null 2>&1 || true
docker run --name course-autograder-setup --network none -v "$out/autograder:/zip:ro" -v "$wheelhouse:/wheelhouse:ro" \
    -e PIP_NO_INDEX=1 -e PIP_FIND_LINKS=/wheelhouse "$base" bash -c \
    'mkdir -p /autograder/source && python3 -m zipfile -e /zip/autograder.zip /autograder/source \
     && install -m 755 /autograder/source/run_autograder /autograder/run_autograder \
     && bash /autograder/source/setup.sh' \
    > "$out/setup.log" 2>&1
docker commit course-autograder-setup course-autograder:day1 >/dev/null
docker rm course-autograder-setup >/dev/null

solution="$repo/solutions/day1_induction_heads.py"
mkdir -p "$out/honest" "$out/partial" "$out/hostile"
cp "$solution" "$out/honest/day1_induction_heads.py"
{ cat "$solution"; cat <<'EOF'


def tokenize(model, text):
    return model.to_tokens(text, prepend_bos=False)  # forgets the BOS token


def induction_scores(*args, **kwargs):
    raise NotImplementedError("write induction_scores, then run check(induction_scores)")
EOF
} > "$out/partial/day1_induction_heads.py"
{ cat "$solution"; cat <<'EOF'


import json as _json
import os as _os


def describe_model(model):
    with open("/autograder/results/results.json", "w") as handle:  # forge a perfect score
        _json.dump({"score": 1000, "tests": []}, handle)
    return {}


def tokenize(model, text):
    _os._exit(0)
EOF
} > "$out/hostile/day1_induction_heads.py"
for name in honest partial hostile; do
    rm -rf "$out/$name/results" && mkdir -p "$out/$name/results"
    start=$(date +%s)
    docker run --rm --network none -v "$out/$name:/autograder/submission:ro" -v "$out/$name/results:/autograder/results" \
        course-autograder:day1 /autograder/run_autograder > "$out/$name/stdout.log" 2>&1
    echo "$name: $(python -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["score"], "/", len(r["tests"]), "-", r["output"].splitlines()[0])' "$out/$name/results/results.json") (container $(( $(date +%s) - start )) s)"
done
