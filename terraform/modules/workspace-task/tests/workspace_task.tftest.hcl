mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:t/proxy/bedrock-credentials-AbCdEf"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/t-exec"
    }
  }
}

variables {
  name                 = "t"
  region               = "us-east-1"
  agent_image          = "registry.example/workspace:1"
  proxy_image          = "registry.example/proxy-sidecar:1"
  agent_log_group_name = "/ecs/t/agent"
  proxy_log_group_name = "/ecs/t/proxy"
  bedrock_model_arns   = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-x"]
  proxy_secrets = {
    MCP_GITHUB_TOKEN = "arn:aws:secretsmanager:us-east-1:111111111111:secret:mcp/github-XyZ123:token::"
  }
}

run "no_task_role_awsvpc" {
  command = apply

  assert {
    condition     = aws_ecs_task_definition.this.task_role_arn == null || aws_ecs_task_definition.this.task_role_arn == ""
    error_message = "The workspace task must have no task role."
  }

  assert {
    condition     = aws_ecs_task_definition.this.network_mode == "awsvpc" && aws_ecs_task_definition.this.execution_role_arn == "arn:aws:iam::111111111111:role/t-exec"
    error_message = "awsvpc with the module's execution role."
  }
}

run "read_only_roots_no_capabilities_non_root" {
  command = apply

  assert {
    condition = alltrue([for c in jsondecode(aws_ecs_task_definition.this.container_definitions) :
      c.readonlyRootFilesystem == true && !startswith(c.user, "0:") && c.privileged == false &&
      c.linuxParameters.capabilities.drop == ["ALL"] && length(c.linuxParameters.capabilities.add) == 0 &&
      contains(c.dockerSecurityOptions, "no-new-privileges") && c.linuxParameters.maxSwap == 0 &&
      c.memory > 0 && length(c.linuxParameters.tmpfs) > 0
    ])
    error_message = "Every container: read-only root, non-root uid, ALL capabilities dropped, no-new-privileges, memory limit without swap, tmpfs."
  }

  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.this.container_definitions)[0].user == "1000:1000" &&
      jsondecode(aws_ecs_task_definition.this.container_definitions)[1].user == "65532:65532"
    )
    error_message = "The sandbox runs as 1000:1000; the sidecar, which holds the signer's key, as its own uid 65532."
  }

  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.name] == ["agent", "proxy"]
    error_message = "Exactly the agent and the proxy sidecar."
  }
}

run "sidecar_health_check_and_healthy_dependency" {
  command = apply

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[1].healthCheck.command == ["CMD", "/usr/local/bin/proxy-sidecar", "healthcheck"]
    error_message = "The sidecar must have its health check."
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].dependsOn == [{ containerName = "proxy", condition = "HEALTHY" }]
    error_message = "The agent must wait for the sidecar to be HEALTHY."
  }

  assert {
    condition     = [for p in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].portMappings : p.containerPort] == [9000] && !can(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].portMappings)
    error_message = "Only the agent's port 9000 is exposed."
  }
}

run "credentials_reach_only_the_sidecar" {
  command = apply

  assert {
    condition     = !can(jsondecode(aws_ecs_task_definition.this.container_definitions)[0].secrets)
    error_message = "The agent container must get no secret."
  }

  assert {
    condition = length([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name
    if length(regexall("SECRET|ACCESS_KEY|TOKEN|PASSWORD|CREDENTIAL", upper(e.name))) > 0]) == 0
    error_message = "The agent environment must hold no credential."
  }

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name => e.value
      if contains(["AWS_REGION", "ANTHROPIC_BEDROCK_BASE_URL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_SKIP_BEDROCK_AUTH"], e.name)
      } == {
      AWS_REGION                    = "us-east-1"
      ANTHROPIC_BEDROCK_BASE_URL    = "http://127.0.0.1:8080"
      CLAUDE_CODE_USE_BEDROCK       = "1"
      CLAUDE_CODE_SKIP_BEDROCK_AUTH = "1"
    }
    error_message = "Claude Code in the agent container reaches Bedrock through the sidecar's gateway, in the task's region, without credentials."
  }

  assert {
    condition = toset([for s in jsondecode(aws_ecs_task_definition.this.container_definitions)[1].secrets : s.name]) == toset([
      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MCP_GITHUB_TOKEN",
    ])
    error_message = "The sidecar gets the signing keys and the MCP secrets."
  }

  assert {
    condition = toset(flatten([for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "ReadProxySecretsOnly"])) == toset([
      "arn:aws:secretsmanager:us-east-1:111111111111:secret:t/proxy/bedrock-credentials-AbCdEf",
      "arn:aws:secretsmanager:us-east-1:111111111111:secret:mcp/github-XyZ123",
    ])
    error_message = "The execution role reads exactly the proxy's secrets."
  }

  assert {
    condition = alltrue([for s in data.aws_iam_policy_document.execution.statement :
    !anytrue([for a in s.actions : startswith(a, "secretsmanager:")]) || s.actions == toset(["secretsmanager:GetSecretValue"])])
    error_message = "GetSecretValue is the only Secrets Manager action."
  }
}

run "bedrock_through_the_vpc_endpoint" {
  command = apply

  assert {
    condition = contains([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment : e.value
    if e.name == "PROXY_BEDROCK_ALLOW_PRIVATE"], "true")
    error_message = "The sidecar must be allowed to dial the bedrock-runtime endpoint's private addresses."
  }

  assert {
    condition = length([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name
    if startswith(e.name, "PROXY_")]) == 0
    error_message = "The proxy's settings belong to the sidecar container only."
  }
}

run "teardown_removes_the_out_of_band_signer_key" {
  command = plan

  assert {
    condition     = aws_iam_user.bedrock_signer.force_destroy
    error_message = "Destroying the signer user must also delete its out-of-band access key."
  }
}

run "sidecar_uid_must_differ_from_the_sandbox" {
  command = plan

  variables {
    proxy_user = "1000:1000"
  }

  expect_failures = [var.proxy_user]
}

run "inference_profile_with_its_foundation_models" {
  command = plan

  variables {
    bedrock_model_arns = [
      "arn:aws:bedrock:us-east-1:111111111111:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
      "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
      "arn:aws:bedrock:us-east-2::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
      "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
    ]
  }

  assert {
    condition     = toset(data.aws_iam_policy_document.bedrock_invoke.statement[0].resources) == toset(var.bedrock_model_arns)
    error_message = "The signer may invoke the profile and its foundation models."
  }
}

run "inference_profile_without_its_foundation_model_is_refused" {
  command = plan

  variables {
    bedrock_model_arns = ["arn:aws:bedrock:us-east-1:111111111111:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"]
  }

  expect_failures = [var.bedrock_model_arns]
}

run "proxy_listens_on_loopback_only" {
  command = plan

  variables {
    proxy_listen = "0.0.0.0:8080"
  }

  expect_failures = [var.proxy_listen]
}

run "proxy_admin_listens_on_loopback_only" {
  command = plan

  variables {
    proxy_admin_listen = "0.0.0.0:9901"
  }

  expect_failures = [var.proxy_admin_listen]
}
