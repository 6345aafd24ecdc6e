#!/bin/bash
# tests/infra/run.sh: every check of the infrastructure (terraform/, packer/, ami/), offline.
#
#   bash tests/infra/run.sh               # all steps
#   INFRA_ONLY=moto,checkov bash tests/infra/run.sh   # some steps (names below)
#
# Steps: fmt layout validate test mutation moto checkov shellcheck packer harden imds dockerd
# Needs: terraform (with the provider mirror at /opt/tf-plugins), python3 with boto3 and
# moto (moto_server), checkov, shellcheck, packer, openssl, gcc (static libc), busybox,
# iproute2 + iptables, dockerd + docker CLI, root. Network: loopback only.
# Every step runs; the script prints a summary and exits 1 if any step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/infra
TF_DIR=$ROOT/terraform

export TF_CLI_CONFIG_FILE=$TF_DIR/terraformrc
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
unset TF_DATA_DIR TF_WORKSPACE

WORK=$(mktemp -d /tmp/infra-test.XXXXXX)
export TF_PLUGIN_CACHE_DIR=$WORK/plugin-cache
mkdir -p "$TF_PLUGIN_CACHE_DIR"
cleanup() {
  rm -rf "$WORK"
}
trap cleanup EXIT

MODULES=()
for d in "$TF_DIR"/modules/*/; do MODULES+=("$(basename "$d")"); done
ENVS=(staging production moto)
# The composition's own tests (terraform/composition/tests) run from this environment:
# terraform test reads tests only from inside the configuration directory, so the copy
# gets a tests -> ../../composition/tests link.
COMPOSITION_TEST_ENV=staging

# --- helpers ------------------------------------------------------------------------------

log() { echo "    $*"; }

# A copy of terraform/ in the work directory: init, lock files and state never touch the
# repository.
tf_copy() {
  if [[ ! -d "$WORK/tf" ]]; then
    mkdir -p "$WORK/tf"
    (cd "$TF_DIR" && tar --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' -cf - .) |
      tar -C "$WORK/tf" -xf -
  fi
}

tf_init() { # tf_init DIR NAME
  TF_DATA_DIR=$WORK/data/$2 terraform -chdir="$1" init -backend=false -input=false -no-color >"$WORK/init-$2.log" 2>&1 ||
    { cat "$WORK/init-$2.log"; return 1; }
}

placeholder_zip() {
  local zip=$WORK/lambda/placeholder.zip
  if [[ ! -f "$zip" ]]; then
    mkdir -p "$WORK/lambda"
    python3 - "$zip" <<'PY'
import sys, zipfile
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(info, "#!/bin/sh\necho placeholder >&2\nexit 1\n")
PY
  fi
  echo "$zip"
}

# --- steps --------------------------------------------------------------------------------

step_fmt() {
  terraform fmt -check -recursive -diff "$TF_DIR"
  log "terraform fmt: clean"
}

step_layout() {
  local bad=0 m e f
  for m in "${MODULES[@]}"; do
    for f in main.tf variables.tf outputs.tf versions.tf README.md; do
      [[ -f "$TF_DIR/modules/$m/$f" ]] || { log "modules/$m lacks $f"; bad=1; }
    done
    compgen -G "$TF_DIR/modules/$m/tests/*.tftest.hcl" >/dev/null || { log "modules/$m has no terraform test"; bad=1; }
  done
  # One composition for every environment: envs/<env>/{main,variables,outputs}.tf are
  # links to terraform/composition/.
  for e in "${ENVS[@]}"; do
    for f in main.tf variables.tf outputs.tf; do
      [[ -L "$TF_DIR/envs/$e/$f" && "$(readlink -f "$TF_DIR/envs/$e/$f")" == "$(readlink -f "$TF_DIR/composition/$f")" ]] ||
        { log "envs/$e/$f must link ../../composition/$f (the environments share one composition)"; bad=1; }
    done
  done
  # Every variable and output has a description, every variable a type.
  python3 - "$TF_DIR" <<'PY' || bad=1
import pathlib, re, sys
bad = 0
for f in sorted(pathlib.Path(sys.argv[1]).glob("**/*.tf")):
    if ".terraform" in f.parts:
        continue
    text = f.read_text()
    for kind, name, body in re.findall(r'^(variable|output) "([^"]+)" \{\n(.*?)^\}', text, re.S | re.M):
        need = ["description"] + (["type"] if kind == "variable" else [])
        for k in need:
            if not re.search(rf"^\s+{k}\s+=", body, re.M):
                print(f"    {f.relative_to(sys.argv[1])}: {kind} {name} has no {k}")
                bad = 1
sys.exit(bad)
PY
  python3 "$HERE/module_docs.py" --check || bad=1
  cmp -s "$ROOT/ami/workspace-seccomp.json" "$ROOT/deployment/seccomp/workspace-seccomp.json" ||
    { log "ami/workspace-seccomp.json differs from deployment/seccomp/workspace-seccomp.json"; bad=1; }
  if [[ -f "$ROOT/deployment/seccomp/derive.py" ]]; then
    python3 "$ROOT/deployment/seccomp/derive.py" --check >/dev/null || { log "deployment/seccomp profile is not its derivation"; bad=1; }
  fi
  [[ $bad -eq 0 ]] && log "modules complete with current README tables, environments share one composition, variables typed and described, seccomp copies identical"
  return "$bad"
}

step_validate() {
  tf_copy
  local m e rc=0
  for m in "${MODULES[@]}"; do
    tf_init "$WORK/tf/modules/$m" "$m" || { rc=1; continue; }
    if TF_DATA_DIR=$WORK/data/$m terraform -chdir="$WORK/tf/modules/$m" validate -no-color >"$WORK/validate-$m.log" 2>&1; then
      log "modules/$m: valid"
    else
      cat "$WORK/validate-$m.log"; rc=1
    fi
  done
  tf_init "$WORK/tf/account" account || rc=1
  if TF_DATA_DIR=$WORK/data/account terraform -chdir="$WORK/tf/account" validate -no-color >"$WORK/validate-account.log" 2>&1; then
    log "account: valid"
  else
    cat "$WORK/validate-account.log"; rc=1
  fi
  for e in "${ENVS[@]}"; do
    tf_init "$WORK/tf/envs/$e" "env-$e" || { rc=1; continue; }
    if TF_DATA_DIR=$WORK/data/env-$e terraform -chdir="$WORK/tf/envs/$e" validate -no-color >"$WORK/validate-env-$e.log" 2>&1; then
      log "envs/$e: valid"
    else
      cat "$WORK/validate-env-$e.log"; rc=1
    fi
  done
  return "$rc"
}

run_module_tests() { # run_module_tests DIR NAME LOG
  local args=(-no-color) zip
  zip=$(placeholder_zip)
  [[ "$2" == scheduled-lambda || "$2" == mutant-scheduled-lambda* ]] && args+=(-var "zip_path=$zip")
  [[ -L "$1/tests" ]] && args+=(-var "gc_zip_path=$zip" -var "warm_pool_zip_path=$zip" -var "egress_sync_zip_path=$zip")
  TF_DATA_DIR=$WORK/data/$2 terraform -chdir="$1" test "${args[@]}" >"$3" 2>&1
}

# A copy of terraform/ (under $1) whose test environment links the composition's tests.
composition_tree() { # composition_tree DIR
  mkdir -p "$1"
  (cd "$TF_DIR" && tar --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' -cf - .) | tar -C "$1" -xf -
  ln -sfn ../../composition/tests "$1/envs/$COMPOSITION_TEST_ENV/tests"
}

step_test() {
  tf_copy
  local m rc=0
  for m in "${MODULES[@]}"; do
    [[ -d "$WORK/data/$m" ]] || tf_init "$WORK/tf/modules/$m" "$m"
    if run_module_tests "$WORK/tf/modules/$m" "$m" "$WORK/test-$m.log"; then
      log "modules/$m: $(grep -E '^Success!' "$WORK/test-$m.log")"
    else
      cat "$WORK/test-$m.log"; rc=1
    fi
  done
  [[ -d "$WORK/data/account" ]] || tf_init "$WORK/tf/account" account
  if run_module_tests "$WORK/tf/account" account "$WORK/test-account.log"; then
    log "account: $(grep -E '^Success!' "$WORK/test-account.log")"
  else
    cat "$WORK/test-account.log"; rc=1
  fi
  local cdir=$WORK/composition/envs/$COMPOSITION_TEST_ENV
  [[ -d "$cdir" ]] || composition_tree "$WORK/composition"
  tf_init "$cdir" composition || return 1
  if run_module_tests "$cdir" composition "$WORK/test-composition.log"; then
    log "composition (reachability, quota, refusals): $(grep -E '^Success!' "$WORK/test-composition.log")"
  else
    cat "$WORK/test-composition.log"; rc=1
  fi
  return "$rc"
}

# Proof that the terraform tests can fail: each mutation removes one protection from a copy
# of a module; its tests must then fail.
step_mutation() {
  local rc=0 n=0 spec m f expr dir
  local mutations=(
    "ecs-cluster|main.tf|s/http_put_response_hop_limit = 1/http_put_response_hop_limit = 2/"
    "ecs-cluster|templates/user-data.sh.tftpl|/ECS_WARM_POOLS_CHECK/d"
    "ecs-cluster|templates/user-data.sh.tftpl|/ECS_TASK_PIDS_LIMIT/d"
    "ecs-cluster|main.tf|s/!var.require_custom_ami || var.ami_id != null/var.ami_id == var.ami_id/"
    "ecs-cluster|main.tf|s/!var.require_awsvpc_trunking || var.awsvpc_trunking == \"enabled\"/var.awsvpc_trunking == var.awsvpc_trunking/"
    "workspace-task|main.tf|s/drop = \\[\"ALL\"\\]/drop = [\"NET_RAW\"]/"
    "workspace-task|main.tf|s/^  # task_role_arn is deliberately not set.*/  task_role_arn = aws_iam_role.execution.arn/"
    "workspace-task|main.tf|s/      user      = var.proxy_user/      user      = var.agent_user/"
    "workspace-task|main.tf|/PROXY_BEDROCK_ALLOW_PRIVATE = \"true\"/d"
    "security-groups|main.tf|s/workspace_out_allowed      = { group = \"workspace\", type = \"egress\", port = 443/workspace_out_allowed = { group = \"workspace\", type = \"egress\", port = 80/"
    "security-groups|main.tf|s/source_group = \"bedrock\" }/source_group = \"endpoints\" }/"
    "security-groups|main.tf|s/<= var.rules_per_security_group/<= 1000/"
    "network|endpoints.tf|/  policy              = data.aws_iam_policy_document.interface_endpoint/d"
    "network|endpoints.tf|s/\"aws:ResourceAccount\", values = \\[local.account_id\\]/\"aws:ResourceAccount\", values = [\"*\"]/"
    "dns-firewall|main.tf|s/block_priority = 1000/block_priority = 50/"
    "storage|main.tf|s/block_public_policy     = true/block_public_policy = false/"
    "control-plane-service|main.tf|s/resources = \\[var.workspace_execution_role_arn\\]/resources = [\"*\"]/"
    "control-plane-service|main.tf|/mountPoints            = /d"
    "control-plane-service|main.tf|s|values = \\[\"/metrics\", \"/metrics/\\*\"\\]|values = [\"/internal/metrics\"]|"
    "ecr|main.tf|s/image_tag_mutability = \"IMMUTABLE\"/image_tag_mutability = \"MUTABLE\"/"
    "composition|variables.tf|s/can(regex(\"^ami-\\[0-9a-f\\]{8,17}\$\", var.ami_id))/var.ami_id == var.ami_id/"
    "composition|variables.tf|s/can(regex(\"^\\[^@:\\]+(:\\[0-9\\]+)?\\/\\[^@\\]+@sha256:\\[0-9a-f\\]{64}\$\", i))/i == i/"
    "composition|main.tf|s/\"\\*.\${var.region}.amazonaws.com\",/\"*.amazonaws.com\",/"
  )
  for spec in "${mutations[@]}"; do
    IFS='|' read -r m f expr <<<"$spec"
    n=$((n + 1))
    local orig test_dir
    rm -rf "$WORK/mutant-$n"
    if [[ "$m" == composition ]]; then
      # The shared composition: a whole copy of terraform/, tested from the test environment.
      composition_tree "$WORK/mutant-$n"
      orig=$TF_DIR/composition/$f
      dir=$WORK/mutant-$n/composition
      test_dir=$WORK/mutant-$n/envs/$COMPOSITION_TEST_ENV
    else
      orig=$TF_DIR/modules/$m/$f
      dir=$WORK/mutant-$n
      cp -r "$TF_DIR/modules/$m" "$dir"
      rm -rf "$dir/.terraform" "$dir/.terraform.lock.hcl"
      test_dir=$dir
    fi
    sed -i "$expr" "$dir/$f"
    if cmp -s "$orig" "$dir/$f"; then
      log "mutation $n ($m/$f) did not apply: $expr"; rc=1; continue
    fi
    tf_init "$test_dir" "mutant-$n" || { rc=1; continue; }
    if run_module_tests "$test_dir" "mutant-$n" "$WORK/mutant-$n.log"; then
      log "mutation $n of $m SURVIVED (tests still pass): $expr"; rc=1
    else
      log "mutation $n of $m caught: $(grep -E '^Failure!' "$WORK/mutant-$n.log" || echo failed)"
    fi
  done
  return "$rc"
}

# Runs a terraform command against moto, logging to $1. moto_server (one Python
# process) sometimes drops a connection under load ("use of closed network
# connection", "connection reset"), and the provider, at max_retries = 1, does not
# retry: such a transport error (only that) gets one more attempt. apply and destroy
# are idempotent, so the retry continues where the first attempt stopped.
tf_moto() {
  local logf=$1; shift
  "$@" >"$logf" 2>&1 && return 0
  if grep -Eq 'use of closed network connection|connection reset by peer|unexpected EOF' "$logf"; then
    log "moto transport error; retrying once ($(basename "$logf"))"
    cp "$logf" "$logf.first"
    "$@" >"$logf" 2>&1 && return 0
  fi
  return 1
}

step_moto() {
  tf_copy
  local port endpoint dir=$WORK/tf/envs/moto zip vars rc=0
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  endpoint=http://127.0.0.1:$port
  log "starting moto_server on $endpoint"
  MOTO_IAM_LOAD_MANAGED_POLICIES=true moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  # This step runs in a subshell: stop moto_server however the step ends.
  trap 'kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null' EXIT
  for _ in $(seq 1 60); do
    curl -sf -o /dev/null "$endpoint/moto-api/" && break
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log"; return 1; }
    sleep 0.5
  done
  curl -sf -o /dev/null "$endpoint/moto-api/" || { log "moto_server did not come up"; return 1; }

  python3 "$HERE/moto_check.py" prepare --endpoint "$endpoint" --out "$WORK"
  zip=$(placeholder_zip)
  vars=(-var "moto_endpoint=$endpoint" -var "certificate_arn=$(cat "$WORK/certificate_arn")"
    -var "gc_zip_path=$zip" -var "warm_pool_zip_path=$zip" -var "egress_sync_zip_path=$zip")

  # The account baseline first, as an operator does (docs/deploy.md): terraform/account
  # with the moto provider (its main/variables/outputs linked, envs/moto's provider and
  # local state), without the account setting moto lacks.
  local adir=$WORK/tf/account-moto
  local avars=(-var "moto_endpoint=$endpoint" -var "region=us-east-1" -var "manage_ecs_account_settings=false")
  mkdir -p "$adir"
  for f in main.tf variables.tf outputs.tf; do ln -sfn "../account/$f" "$adir/$f"; done
  cp "$dir/providers.tf" "$dir/versions.tf" "$adir/"
  tf_init "$adir" account-moto
  account_tf() { TF_DATA_DIR=$WORK/data/account-moto terraform -chdir="$adir" "$@"; }
  log "terraform/account: apply (log: account-apply.log)"
  if ! tf_moto "$WORK/account-apply.log" account_tf apply -auto-approve -no-color "${avars[@]}"; then
    grep -E -A12 '^(Error|│ Error)' "$WORK/account-apply.log" | head -40; return 1
  fi

  export TF_DATA_DIR=$WORK/data/env-moto
  [[ -d "$TF_DATA_DIR" ]] || tf_init "$dir" env-moto

  log "terraform apply (log: apply.log)"
  if ! tf_moto "$WORK/apply.log" terraform -chdir="$dir" apply -auto-approve -no-color "${vars[@]}"; then
    grep -E -A12 '^(Error|│ Error)' "$WORK/apply.log" | head -80; rc=1
  else
    log "$(grep -E '^Apply complete' "$WORK/apply.log")"
    log "terraform plan -detailed-exitcode (must be 0: no drift)"
    local prc=0
    terraform -chdir="$dir" plan -detailed-exitcode -no-color "${vars[@]}" >"$WORK/plan.log" 2>&1 || prc=$?
    if [[ $prc -eq 0 ]]; then
      log "no changes after apply"
    else
      log "plan exit code $prc (2 = drift):"; grep -E '^  # |^Plan:|^\s+[~+-] ' "$WORK/plan.log" | head -60; rc=1
    fi
    terraform -chdir="$dir" output -json >"$WORK/outputs.json"
    python3 "$HERE/moto_check.py" verify --endpoint "$endpoint" --outputs "$WORK/outputs.json" \
      --ecs-config "$ROOT/ami/ecs.config" || rc=1
    # Teardown as documented: the operator created the signer's access key out of band.
    python3 "$HERE/moto_check.py" signer-key --endpoint "$endpoint" --outputs "$WORK/outputs.json"
  fi

  # envs/moto sets signer_force_destroy = false (moto lacks iam:ListServiceSpecificCredentials,
  # which force_destroy calls): the documented manual step deletes the key instead.
  [[ -f "$WORK/outputs.json" ]] && python3 "$HERE/moto_check.py" signer-key --delete --endpoint "$endpoint" --outputs "$WORK/outputs.json"
  log "terraform destroy (environment, then the account baseline)"
  if tf_moto "$WORK/destroy.log" terraform -chdir="$dir" destroy -auto-approve -no-color "${vars[@]}"; then
    local left
    left=$(terraform -chdir="$dir" state list | wc -l)
    if [[ "$left" -eq 0 ]]; then log "environment destroyed, state empty"; else log "$left resources left in state"; rc=1; fi
  else
    grep -E -A12 '^(Error|│ Error)' "$WORK/destroy.log" | head -60; rc=1
  fi
  unset TF_DATA_DIR
  if tf_moto "$WORK/account-destroy.log" account_tf destroy -auto-approve -no-color "${avars[@]}" &&
    [[ $(account_tf state list | wc -l) -eq 0 ]]; then
    log "account baseline destroyed, state empty"
  else
    grep -E -A12 '^(Error|│ Error)' "$WORK/account-destroy.log" | head -40; rc=1
  fi
  return "$rc"
}

find_checkov() {
  if [[ -n "${CHECKOV:-}" ]]; then echo "$CHECKOV"
  elif command -v checkov >/dev/null 2>&1; then command -v checkov
  elif [[ -x /opt/checkov-venv/bin/checkov ]]; then echo /opt/checkov-venv/bin/checkov
  else return 1
  fi
}

step_checkov() {
  local checkov
  checkov=$(find_checkov) || { log "checkov not found (pip install checkov, or set CHECKOV=/path/to/checkov)"; return 1; }
  tf_copy
  # Scan the clean copy (no .terraform directories) with the committed skip list.
  if (cd "$WORK/tf" && "$checkov" --config-file "$TF_DIR/.checkov.yaml" -d . >"$WORK/checkov.log" 2>&1); then
    log "$(grep -E 'Passed checks' "$WORK/checkov.log")"
  else
    cat "$WORK/checkov.log"; return 1
  fi
}

step_shellcheck() {
  local files=()
  mapfile -t files < <(cd "$ROOT" && find ami packer tests/infra -name '*.sh' -type f | sort)
  (cd "$ROOT" && shellcheck "${files[@]}")
  log "shellcheck clean: ${files[*]}"
}

step_packer() {
  local net=()
  [[ $(id -u) -eq 0 ]] && net=(unshare -n)
  packer validate -syntax-only "$ROOT/packer/workspace-host.pkr.hcl"
  # Full validation (builder configuration too) in a namespace without network: it must
  # not need AWS.
  (cd "$ROOT/packer" && "${net[@]}" packer validate workspace-host.pkr.hcl)
  log "packer validate: syntax and configuration valid (offline)"
}

step_harden() { bash "$HERE/harden_test.sh"; }
step_imds() { bash "$HERE/imds_block_test.sh"; }
step_dockerd() { bash "$HERE/dockerd_seccomp_test.sh"; }

# --- main ---------------------------------------------------------------------------------

STEPS=(fmt layout validate test mutation moto checkov shellcheck packer harden imds dockerd)
declare -A TITLE=(
  [fmt]="terraform fmt -check -recursive"
  [layout]="module layout, shared env composition, seccomp copy"
  [validate]="terraform init -backend=false + validate (modules, envs)"
  [test]="terraform test (mock_provider) per module"
  [mutation]="terraform tests fail when a protection is removed"
  [moto]="envs/moto: apply, plan -detailed-exitcode, boto3 read-back, destroy"
  [checkov]="checkov over terraform/ (committed skip list)"
  [shellcheck]="shellcheck ami/ packer/ tests/infra/"
  [packer]="packer validate"
  [harden]="ami/scripts/harden.sh into a temporary root"
  [imds]="IMDS block in network namespaces"
  [dockerd]="dockerd with the AMI daemon.json: seccomp profile by default"
)

selected=("${STEPS[@]}")
if [[ -n "${INFRA_ONLY:-}" ]]; then IFS=',' read -r -a selected <<<"$INFRA_ONLY"; fi

for tool in terraform python3 moto_server curl shellcheck packer openssl gcc busybox ip iptables dockerd docker; do
  command -v "$tool" >/dev/null 2>&1 || echo "warning: $tool not found; steps that need it will fail" >&2
done

declare -A RESULT DURATION
start_all=$SECONDS
i=0
for s in "${selected[@]}"; do
  [[ -n "${TITLE[$s]:-}" ]] || { echo "unknown step '$s' (steps: ${STEPS[*]})" >&2; exit 2; }
  i=$((i + 1))
  echo "==> [$i/${#selected[@]}] $s: ${TITLE[$s]}"
  t0=$SECONDS
  # A subshell with errexit of its own: the first failing command ends the step (an `if`
  # around it would disable errexit inside).
  set +e
  (
    set -e
    "step_$s"
  )
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then RESULT[$s]=PASS; else RESULT[$s]=FAIL; fi
  DURATION[$s]=$((SECONDS - t0))
  echo "<== $s: ${RESULT[$s]} (${DURATION[$s]}s)"
done

echo
echo "infra summary ($((SECONDS - start_all))s):"
failed=0
for s in "${selected[@]}"; do
  printf '  %-10s %s %4ss\n' "$s" "${RESULT[$s]}" "${DURATION[$s]}"
  [[ ${RESULT[$s]} == PASS ]] || failed=$((failed + 1))
done
echo "infra steps: $(( ${#selected[@]} - failed )) passed, $failed failed"
[[ $failed -eq 0 ]]
