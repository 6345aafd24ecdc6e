#!/usr/bin/env python3
"""Prepare moto for, and read back, the envs/moto apply (tests/infra/run.sh).

    moto_check.py prepare --endpoint URL --out DIR
        Imports a throw-away self-signed certificate into moto's ACM (the ALB listener
        needs an existing certificate) and writes its ARN to DIR/certificate_arn.

    moto_check.py verify --endpoint URL --outputs FILE --ecs-config FILE
        Reads the created resources back through the AWS APIs (boto3 against moto) and
        asserts the security properties of the estate: reachability computed from the
        security groups as created (rules resolved through referenced groups, CIDRs and
        prefix lists, groups mapped onto the endpoints they hold) and the endpoint
        policies, security group rules, launch template metadata options and user data,
        the ASG warm pool, the capacity provider, the workspace task definition and its
        execution role, the control plane's task definition and role, the ALB's /metrics
        rule, alarms and dashboard, the account baseline's parameter and
        ECR repositories, the bucket, the schedules. FILE is `terraform output -json`.

    moto_check.py signer-key --endpoint URL --outputs FILE [--delete]
        Creates an access key for the Bedrock signer user, as the operator does out of
        band after the first apply; with --delete, deletes the user's keys (the teardown
        step of docs/deploy.md where force_destroy is off, as in envs/moto).

Every check prints one line; the exit status is 1 if any check failed.
"""

import argparse
import base64
import json
import pathlib
import subprocess
import sys
import tempfile

import boto3

REGION = "us-east-1"


def clients(endpoint):
    kw = dict(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return lambda name: boto3.client(name, **kw)


# --- prepare -------------------------------------------------------------------------------


def prepare(args):
    client = clients(args.endpoint)
    out = pathlib.Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = f"{tmp}/key.pem", f"{tmp}/cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=control-plane.moto.internal"],
            check=True, capture_output=True,
        )
        arn = client("acm").import_certificate(
            Certificate=pathlib.Path(cert).read_bytes(),
            PrivateKey=pathlib.Path(key).read_bytes(),
        )["CertificateArn"]
    (out / "certificate_arn").write_text(arn)
    print(f"  imported test certificate {arn}")
    return 0


# --- verify --------------------------------------------------------------------------------


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}{': ' + str(detail) if detail else ''}")


def sg_rules(ec2, group_id):
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]
    ingress = [r for r in rules if not r["IsEgress"]]
    egress = [r for r in rules if r["IsEgress"]]
    return ingress, egress


def rule_target(r):
    if r.get("ReferencedGroupInfo"):
        return ("sg", r["ReferencedGroupInfo"]["GroupId"])
    if r.get("PrefixListId"):
        return ("pl", r["PrefixListId"])
    if r.get("CidrIpv4"):
        return ("cidr", r["CidrIpv4"])
    if r.get("CidrIpv6"):
        return ("cidr6", r["CidrIpv6"])
    return ("?", None)


def shape(rules):
    return sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) + rule_target(r) for r in rules)


def reachability(ec2, vpc_id, vpc_cidr):
    """Source group name => sorted destinations, computed from the rules as AWS holds them.

    Group A reaches group B on port p when an egress rule of A admits B (by group, or by a
    CIDR overlapping the VPC's) and an ingress rule of B admits A the same way. CIDRs and
    prefix lists are destinations of their own (prefix lists by name).
    """
    import ipaddress
    vpc = ipaddress.ip_network(vpc_cidr)
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    name_of = {}
    for g in groups:
        tag = {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get("Name")
        if tag:
            name_of[g["GroupId"]] = tag
    rules = {gid: sg_rules(ec2, gid) for gid in name_of}
    pl_names = {p["PrefixListId"]: p["PrefixListName"] for p in ec2.describe_managed_prefix_lists()["PrefixLists"]}

    def admits(rule, src):
        kind, target = rule_target(rule)
        if kind == "sg":
            return target == src
        return kind == "cidr" and ipaddress.ip_network(target).overlaps(vpc)

    out = {}
    for src, (_, egress) in rules.items():
        dests = set()
        for e in egress:
            kind, target = rule_target(e)
            port = e["FromPort"]
            for dst, (ingress, _) in rules.items():
                if dst != src and admits(e, dst) and any(
                        i["FromPort"] <= port <= i["ToPort"] and admits(i, src) for i in ingress):
                    dests.add(f"group:{name_of[dst]}:{port}")
            if kind == "cidr":
                dests.add(f"cidr:{target}:{port}")
            elif kind == "pl":
                dests.add(f"prefix-list:{pl_names.get(target, target)}:{port}")
        out[name_of[src]] = sorted(dests)
    return out, name_of


def policy_statements(doc):
    if isinstance(doc, str):
        doc = json.loads(doc)
    st = doc["Statement"]
    return st if isinstance(st, list) else [st]


def as_list(v):
    return v if isinstance(v, list) else [v]


def verify(args):
    client = clients(args.endpoint)
    out = {k: v["value"] for k, v in json.loads(pathlib.Path(args.outputs).read_text()).items()}
    c = Checks()
    ec2, ecs, asg, iam = client("ec2"), client("ecs"), client("autoscaling"), client("iam")

    ws_sg = out["workspace_security_group_id"]
    cp_sg = out["control_plane_security_group_id"]
    ep_sg = out["endpoints_security_group_id"]
    egress_pl = out["egress_prefix_list_id"]

    print("security groups")
    ingress, egress = sg_rules(ec2, ws_sg)
    c.check("workspace SG ingress is exactly tcp/9000 from the control-plane SG",
            shape(ingress) == [("tcp", 9000, 9000, "sg", cp_sg)], shape(ingress))
    bedrock_sg = out["bedrock_endpoint_security_group_id"]
    c.check("workspace SG egress is exactly tcp/443 to the bedrock-runtime endpoint SG and to the egress prefix list",
            shape(egress) == sorted([("tcp", 443, 443, "sg", bedrock_sg), ("tcp", 443, 443, "pl", egress_pl)]),
            shape(egress))
    c.check("workspace SG has no CIDR rule at all",
            not any(rule_target(r)[0].startswith("cidr") for r in ingress + egress))

    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [out["vpc_id"]]}])["SecurityGroups"]}
    by_name = {g["GroupName"].rsplit("-", 1)[0]: gid for gid, g in groups.items()}
    alb_sg = next((gid for n, gid in by_name.items() if n.endswith("-alb")), None)
    redis_sg = next((gid for n, gid in by_name.items() if n.endswith("-redis")), None)
    lambda_sg = next((gid for n, gid in by_name.items() if n.endswith("-lambda")), None)
    ingress, _ = sg_rules(ec2, cp_sg)
    c.check("control-plane SG ingress only from the ALB SG on its port",
            alb_sg is not None and shape(ingress) == [("tcp", 8080, 8080, "sg", alb_sg)], shape(ingress))
    ingress, egress = sg_rules(ec2, redis_sg) if redis_sg else ([], [])
    c.check("Redis SG ingress only 6379 from the control plane and the Lambdas",
            shape(ingress) == sorted([("tcp", 6379, 6379, "sg", cp_sg), ("tcp", 6379, 6379, "sg", lambda_sg)]),
            shape(ingress))
    c.check("Redis SG has no egress", egress == [], shape(egress))
    instance_sg = next((gid for n, gid in by_name.items() if n.endswith("-instance")), None)
    ingress, _ = sg_rules(ec2, ep_sg)
    c.check("AWS API endpoint SG admits 443 from the control plane, the Lambdas and the hosts only (no VPC CIDR)",
            shape(ingress) == sorted([("tcp", 443, 443, "sg", cp_sg), ("tcp", 443, 443, "sg", lambda_sg),
                                      ("tcp", 443, 443, "sg", instance_sg)]), shape(ingress))
    ingress, _ = sg_rules(ec2, bedrock_sg)
    c.check("bedrock-runtime endpoint SG admits 443 from the workspace tasks only",
            shape(ingress) == [("tcp", 443, 443, "sg", ws_sg)], shape(ingress))

    print("reachability (from the security groups as created)")
    vpc_cidr = ec2.describe_vpcs(VpcIds=[out["vpc_id"]])["Vpcs"][0]["CidrBlock"]
    matrix, name_of = reachability(ec2, out["vpc_id"], vpc_cidr)
    prefix = out["cluster_name"] + "-"
    by_module_name = {n[len(prefix):].replace("-", "_"): sorted(
        d.replace(f":{prefix}", ":").replace("-", "_") if d.startswith("group:") else d for d in dests)
        for n, dests in matrix.items() if n.startswith(prefix)}
    pl_name = ec2.describe_managed_prefix_lists(PrefixListIds=[egress_pl])["PrefixLists"][0]["PrefixListName"]
    expected_ws = sorted(["group:bedrock:443", f"prefix-list:{pl_name}:443"])
    c.check("a workspace reaches the bedrock-runtime endpoint's group and the egress prefix list, nothing else",
            by_module_name.get("workspace") == expected_ws, by_module_name.get("workspace"))
    c.check("no workspace path to a CIDR (0.0.0.0/0 least of all)",
            not [d for d in by_module_name.get("workspace", []) if d.startswith("cidr:")])
    planned = {g: sorted(d.replace("prefix-list:egress:", f"prefix-list:{pl_name}:") for d in dests
                         if not d.startswith("prefix-list:s3:")) for g, dests in out["reachability"].items()}
    applied = {g: [d for d in dests if not (d.startswith("prefix-list:pl-") or ":com.amazonaws." in d)]
               for g, dests in by_module_name.items() if g in planned}
    c.check("the VPC's default security group reaches nothing", by_module_name.get("default_deny") == [],
            by_module_name.get("default_deny"))
    c.check("reachability as applied equals the plan's (security groups resolved by both)",
            planned == applied, {"plan": planned, "applied": applied})
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [out["vpc_id"]]}])["VpcEndpoints"]
    reached = {d.split(":")[1] for d in by_module_name.get("workspace", []) if d.startswith("group:")}
    ws_endpoints = sorted(e["ServiceName"].rsplit(".", 1)[-1] if "bedrock" not in e["ServiceName"] else "bedrock-runtime"
                          for e in endpoints if e["VpcEndpointType"] == "Interface"
                          and any(name_of.get(g["GroupId"], "")[len(prefix):].replace("-", "_") in reached for g in e.get("Groups", [])))
    c.check("of the interface endpoints, a workspace reaches bedrock-runtime only", ws_endpoints == ["bedrock-runtime"], ws_endpoints)

    print("endpoint policies")
    account = client("sts").get_caller_identity()["Account"]
    for e in sorted(endpoints, key=lambda e: e["ServiceName"]):
        svc = e["ServiceName"].split(".", 3)[-1]
        doc = json.loads(e.get("PolicyDocument") or "{}")
        conds = json.dumps([st.get("Condition", {}) for st in policy_statements(doc)]) if doc else ""
        c.check(f"{svc}: policy limited to this account's principals", f'"aws:PrincipalAccount": "{account}"' in conds
                or f'"aws:PrincipalAccount": ["{account}"]' in conds, conds)
        if e["VpcEndpointType"] == "Gateway":
            res = sorted({r for st in policy_statements(doc) for r in as_list(st["Resource"])})
            c.check("s3 gateway: only the workspace bucket and ECR's layer bucket", res == sorted([
                f"arn:aws:s3:::{out['bucket_name']}", f"arn:aws:s3:::{out['bucket_name']}/*",
                "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"]), res)
    pls = ec2.describe_managed_prefix_lists(PrefixListIds=[egress_pl])["PrefixLists"]
    c.check("egress prefix list exists (IPv4)", len(pls) == 1 and pls[0]["AddressFamily"] == "IPv4")

    print("launch template")
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=out["launch_template_id"], Versions=["$Latest"])["LaunchTemplateVersions"]
    data = versions[0]["LaunchTemplateData"]
    md = data.get("MetadataOptions", {})
    c.check("IMDSv2 required (HttpTokens=required)", md.get("HttpTokens") == "required", md)
    c.check("IMDS hop limit 1", md.get("HttpPutResponseHopLimit") == 1, md)
    ebs = [b["Ebs"] for b in data.get("BlockDeviceMappings", []) if "Ebs" in b]
    c.check("root volume encrypted", bool(ebs) and all(e.get("Encrypted") for e in ebs), ebs)
    user_data = base64.b64decode(data.get("UserData", "")).decode()
    c.check("user data sets ECS_CLUSTER", f"ECS_CLUSTER={out['cluster_name']}\n" in user_data)
    for line in ("ECS_AWSVPC_BLOCK_IMDS=true", "ECS_WARM_POOLS_CHECK=true"):
        c.check(f"user data contains {line}", f"\n{line}\n" in user_data)
    baseline = [l for l in pathlib.Path(args.ecs_config).read_text().splitlines()
                if l and not l.startswith("#")]
    missing = [l for l in baseline if f"\n{l}\n" not in user_data]
    c.check("user data carries every setting of ami/ecs.config", not missing, missing)

    print("auto scaling group")
    group = asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[out["autoscaling_group_name"]])["AutoScalingGroups"][0]
    c.check("ASG protects new instances from scale-in", group.get("NewInstancesProtectedFromScaleIn") is True)
    c.check("ASG uses the launch template",
            group.get("LaunchTemplate", {}).get("LaunchTemplateId") == out["launch_template_id"])
    c.check("ASG tagged AmazonECSManaged",
            any(t["Key"] == "AmazonECSManaged" for t in group.get("Tags", [])))
    wp = asg.describe_warm_pool(AutoScalingGroupName=out["autoscaling_group_name"]).get("WarmPoolConfiguration", {})
    c.check("warm pool in Stopped state", wp.get("PoolState") == "Stopped", wp)
    c.check("warm pool min size >= 1", wp.get("MinSize", 0) >= 1, wp)
    c.check("warm pool reuses instances on scale-in",
            wp.get("InstanceReusePolicy", {}).get("ReuseOnScaleIn") is True, wp)

    print("capacity provider and cluster")
    cps = ecs.describe_capacity_providers(capacityProviders=[out["capacity_provider_name"]])["capacityProviders"]
    cp = cps[0]["autoScalingGroupProvider"] if cps else {}
    ms = cp.get("managedScaling", {})
    c.check("capacity provider on the ASG", cp.get("autoScalingGroupArn", "").endswith(out["autoscaling_group_name"]), cp)
    c.check("managed scaling ENABLED at 85 %", ms.get("status") == "ENABLED" and ms.get("targetCapacity") == 85, ms)
    c.check("managed termination protection ENABLED", cp.get("managedTerminationProtection") == "ENABLED", cp)
    cluster = ecs.describe_clusters(clusters=[out["cluster_name"]], include=["SETTINGS"])["clusters"][0]
    c.check("cluster uses the capacity provider", out["capacity_provider_name"] in cluster.get("capacityProviders", []))
    settings = {s["name"]: s["value"] for s in cluster.get("settings", [])}
    c.check("Container Insights enabled", settings.get("containerInsights") == "enabled", settings)

    print("workspace task definition")
    td = ecs.describe_task_definition(taskDefinition=out["workspace_task_definition_arn"])["taskDefinition"]
    c.check("no task role", not td.get("taskRoleArn"), td.get("taskRoleArn"))
    c.check("network mode awsvpc", td.get("networkMode") == "awsvpc")
    c.check("execution role is the workspace execution role", td.get("executionRoleArn") == out["workspace_execution_role_arn"])
    containers = {d["name"]: d for d in td["containerDefinitions"]}
    c.check("exactly two containers: agent and proxy", sorted(containers) == ["agent", "proxy"], sorted(containers))
    for name, d in sorted(containers.items()):
        lp = d.get("linuxParameters", {})
        caps = lp.get("capabilities", {})
        c.check(f"{name}: read-only root filesystem", d.get("readonlyRootFilesystem") is True)
        c.check(f"{name}: drops ALL capabilities, adds none", caps.get("drop") == ["ALL"] and not caps.get("add"), caps)
        c.check(f"{name}: not privileged", not d.get("privileged"))
        c.check(f"{name}: no-new-privileges", "no-new-privileges" in d.get("dockerSecurityOptions", []))
        c.check(f"{name}: memory limit set, no swap", d.get("memory", 0) > 0 and lp.get("maxSwap") == 0)
        c.check(f"{name}: tmpfs mounts sized", bool(lp.get("tmpfs")) and all(t["size"] > 0 for t in lp["tmpfs"]))
        c.check(f"{name}: awslogs", d.get("logConfiguration", {}).get("logDriver") == "awslogs")
    agent, proxy = containers.get("agent", {}), containers.get("proxy", {})
    c.check("agent (the sandbox) runs as 1000:1000", agent.get("user") == "1000:1000", agent.get("user"))
    c.check("sidecar (holds the signer key) runs as its own uid 65532", proxy.get("user") == "65532:65532", proxy.get("user"))
    c.check("agent exposes only 9000/tcp",
            [(p["containerPort"], p.get("protocol")) for p in agent.get("portMappings", [])] == [(9000, "tcp")])
    c.check("proxy exposes no port", not proxy.get("portMappings"))
    c.check("agent waits for the proxy to be HEALTHY",
            agent.get("dependsOn") == [{"containerName": "proxy", "condition": "HEALTHY"}], agent.get("dependsOn"))
    c.check("proxy has the healthcheck command",
            proxy.get("healthCheck", {}).get("command") == ["CMD", "/usr/local/bin/proxy-sidecar", "healthcheck"])
    agent_env = {e["name"]: e["value"] for e in agent.get("environment", [])}
    proxy_env = {e["name"]: e["value"] for e in proxy.get("environment", [])}
    c.check("agent has no secrets", not agent.get("secrets"))
    c.check("agent environment holds no credential-like variable",
            not [k for k in agent_env if any(s in k.upper() for s in ("SECRET", "ACCESS_KEY", "TOKEN", "PASSWORD", "CREDENTIAL"))])
    c.check("agent goes out only through the sidecar",
            agent_env.get("HTTPS_PROXY") == "http://127.0.0.1:8080" and agent_env.get("HTTP_PROXY") == "http://127.0.0.1:8080"
            and agent_env.get("ANTHROPIC_BEDROCK_BASE_URL") == "http://127.0.0.1:8080")
    c.check("agent listens on tcp:0.0.0.0:9000, relay off",
            agent_env.get("WORKSPACE_AGENT_LISTEN") == "tcp:0.0.0.0:9000" and agent_env.get("WORKSPACE_AGENT_RELAY_LISTEN") == "off")
    c.check("sidecar listens on loopback only", proxy_env.get("PROXY_LISTEN") == "127.0.0.1:8080"
            and proxy_env.get("PROXY_ADMIN_LISTEN", "").startswith("127.0.0.1:"), proxy_env)
    c.check("sidecar may dial the bedrock-runtime endpoint's private addresses",
            proxy_env.get("PROXY_BEDROCK_ALLOW_PRIVATE") == "true", proxy_env.get("PROXY_BEDROCK_ALLOW_PRIVATE"))
    proxy_secret_arns = {s["valueFrom"].split(":AWS_")[0] for s in proxy.get("secrets", [])}
    c.check("sidecar gets the Bedrock signing keys as secrets",
            {s["name"] for s in proxy.get("secrets", [])} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})

    print("IAM")
    role_name = out["workspace_execution_role_arn"].split("/")[-1]
    statements = []
    for pname in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        statements += policy_statements(iam.get_role_policy(RoleName=role_name, PolicyName=pname)["PolicyDocument"])
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    c.check("workspace execution role has no attached managed policy", attached == [], attached)
    secret_resources = set()
    for s in statements:
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"])):
            c.check("execution role's only Secrets Manager action is GetSecretValue",
                    as_list(s["Action"]) == ["secretsmanager:GetSecretValue"], s["Action"])
            secret_resources |= set(as_list(s["Resource"]))
    c.check("execution role reads exactly the proxy's secrets",
            secret_resources == proxy_secret_arns, (secret_resources, proxy_secret_arns))

    cp_role = None
    for r in iam.list_roles()["Roles"]:
        if r["RoleName"].startswith(out["control_plane_service_name"] + "-task"):
            cp_role = r["RoleName"]
    statements = []
    if cp_role:
        for pname in iam.list_role_policies(RoleName=cp_role)["PolicyNames"]:
            statements += policy_statements(iam.get_role_policy(RoleName=cp_role, PolicyName=pname)["PolicyDocument"])
    actions = sorted({a for s in statements for a in as_list(s["Action"])})
    c.check("control-plane task role actions are exactly the expected set", actions == sorted([
        "ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:ListTasks", "ecs:TagResource", "iam:PassRole",
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "kms:Decrypt", "kms:GenerateDataKey",
        "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]), actions)
    pass_role = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    c.check("control plane may pass only the workspace execution role",
            len(pass_role) == 1 and as_list(pass_role[0]["Resource"]) == [out["workspace_execution_role_arn"]], pass_role)
    run_task = [s for s in statements if "ecs:RunTask" in as_list(s["Action"])]
    c.check("RunTask limited to the workspace family in this cluster",
            len(run_task) == 1 and all(":task-definition/ws-moto-workspace:" in r for r in as_list(run_task[0]["Resource"]))
            and "ecs:cluster" in json.dumps(run_task[0].get("Condition", {})), run_task)

    print("control-plane task and ALB")
    svc = ecs.describe_services(cluster=out["cluster_name"], services=[out["control_plane_service_name"]])["services"][0]
    cptd = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    cpc = {d["name"]: d for d in cptd["containerDefinitions"]}
    cp = cpc.get("control-plane", {})
    cp_env = {e["name"]: e["value"] for e in cp.get("environment", [])}
    c.check("control plane mounts the writable spool volume",
            cp.get("mountPoints") == [{"sourceVolume": "spool", "containerPath": "/var/spool/control-plane", "readOnly": False}]
            and any(v["name"] == "spool" for v in cptd.get("volumes", [])), cp.get("mountPoints"))
    c.check("control plane spools there (CP_SYNC__SPOOL_DIR, TMPDIR)",
            cp_env.get("CP_SYNC__SPOOL_DIR") == "/var/spool/control-plane" and cp_env.get("TMPDIR") == "/var/spool/control-plane")
    c.check("metrics collector scrapes the control plane in the task", "metrics-collector" in cpc)
    elb = client("elbv2")
    lb = elb.describe_load_balancers()["LoadBalancers"][0]
    listener = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    metrics_rule = [r for r in rules if any("/metrics" in v for cnd in r.get("Conditions", [])
                                            for v in cnd.get("Values", []) + cnd.get("PathPatternConfig", {}).get("Values", []))]
    c.check("the ALB answers /metrics itself with 404",
            len(metrics_rule) == 1 and metrics_rule[0]["Actions"][0]["Type"] == "fixed-response"
            and metrics_rule[0]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404", metrics_rule)

    print("operations")
    cw = client("cloudwatch")
    alarms = {a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix=out["cluster_name"] + "-")["MetricAlarms"]}
    for a in ("host-cpu", "host-memory", "running-tasks", "host-warm-pool-depleted", "workspace-warm-pool-exhausted",
              "alb-5xx", "target-5xx", "unhealthy-targets", "nat-0-port-allocation", "nat-1-port-allocation"):
        c.check(f"alarm {a}", f"{out['cluster_name']}-{a}" in alarms)
    c.check("dashboard exists", bool(cw.get_dashboard(DashboardName=out["dashboard_name"]).get("DashboardBody")))
    ssm = client("ssm")
    trunking = ssm.get_parameter(Name="/workspaces/account-baseline/ecs/awsvpcTrunking")["Parameter"]["Value"]
    c.check("the environment read the account baseline's published trunking setting",
            trunking == out["awsvpc_trunking"] == "unmanaged", (trunking, out["awsvpc_trunking"]))
    repos = client("ecr").describe_repositories()["repositories"]
    c.check("account ECR repositories: immutable tags, scan on push", len(repos) == 4 and all(
        r["imageTagMutability"] == "IMMUTABLE" and r["imageScanningConfiguration"]["scanOnPush"] for r in repos),
        [(r["repositoryName"], r["imageTagMutability"]) for r in repos])

    print("storage")
    s3 = client("s3")
    bucket = out["bucket_name"]
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    c.check("bucket public access fully blocked", all(pab.values()) and len(pab) == 4, pab)
    c.check("bucket versioned", s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    c.check("bucket encrypted with KMS", enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", enc)
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    c.check("bucket policy denies non-TLS access", any(
        s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
        for s in policy_statements(policy)))
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    c.check("noncurrent versions expire after 30 days",
            rules.get("expire-noncurrent-versions", {}).get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 30)
    arch = rules.get("archive-then-delete", {})
    c.check("objects go to Glacier Instant Retrieval after 90 days and are deleted at 180 days",
            arch.get("Transitions", [{}])[0].get("Days") == 90 and arch["Transitions"][0].get("StorageClass") == "GLACIER_IR"
            and arch.get("Expiration", {}).get("Days") == 180, arch)

    print("scheduled lambdas")
    lam, sched = client("lambda"), client("scheduler")
    for key, fname in sorted(out["lambda_function_names"].items()):
        fn = lam.get_function(FunctionName=fname)
        conf = fn["Configuration"]
        c.check(f"{key}: provided.al2023 / bootstrap", conf["Runtime"] == "provided.al2023" and conf["Handler"] == "bootstrap")
        c.check(f"{key}: reserved concurrency 1", fn.get("Concurrency", {}).get("ReservedConcurrentExecutions") == 1, fn.get("Concurrency"))
        s = sched.get_schedule(Name=fname)
        c.check(f"{key}: schedule targets the function", s["Target"]["Arn"] == conf["FunctionArn"])
        srole = s["Target"]["RoleArn"].split("/")[-1]
        sst = []
        for pname in iam.list_role_policies(RoleName=srole)["PolicyNames"]:
            sst += policy_statements(iam.get_role_policy(RoleName=srole, PolicyName=pname)["PolicyDocument"])
        invoke = [st for st in sst if "lambda:InvokeFunction" in as_list(st["Action"])]
        res = {r for st in invoke for r in as_list(st["Resource"])}
        c.check(f"{key}: scheduler role may invoke only this function",
                {a for st in sst for a in as_list(st["Action"])} <= {"lambda:InvokeFunction", "kms:Decrypt"}
                and res == {conf["FunctionArn"], conf["FunctionArn"] + ":*"}, res)

    print(f"boto3 read-back: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


def signer_key(args):
    out = {k: v["value"] for k, v in json.loads(pathlib.Path(args.outputs).read_text()).items()}
    iam = clients(args.endpoint)("iam")
    user = out["bedrock_signer_user_name"]
    if args.delete:
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=user, AccessKeyId=k["AccessKeyId"])
            print(f"  deleted access key {k['AccessKeyId']} of {user} (docs/deploy.md teardown, force_destroy off)")
        return 0
    key = iam.create_access_key(UserName=user)["AccessKey"]
    print(f"  created access key {key['AccessKeyId']} for {user} (out of band, as the operator does)")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--endpoint", required=True)
    pp.add_argument("--out", required=True)
    pv = sub.add_parser("verify")
    pv.add_argument("--endpoint", required=True)
    pv.add_argument("--outputs", required=True)
    pv.add_argument("--ecs-config", required=True)
    pk = sub.add_parser("signer-key")
    pk.add_argument("--endpoint", required=True)
    pk.add_argument("--outputs", required=True)
    pk.add_argument("--delete", action="store_true", help="delete the user's access keys instead")
    args = p.parse_args()
    return {"prepare": prepare, "verify": verify, "signer-key": signer_key}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
