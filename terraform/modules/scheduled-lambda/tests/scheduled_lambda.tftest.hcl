# zip_path is passed by tests/infra/run.sh (-var zip_path=...): a placeholder zip with a
# `bootstrap` file, built in a temporary directory.

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111111111111:role/t-gc"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_resource "aws_lambda_function" {
    defaults = {
      arn = "arn:aws:lambda:us-east-1:111111111111:function:t-gc"
    }
  }
}

variables {
  name                = "t-gc"
  schedule_expression = "rate(1 minute)"
  policy_json         = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
}

run "rust_lambda_on_a_schedule" {
  command = apply

  assert {
    condition = (
      aws_lambda_function.this.runtime == "provided.al2023" &&
      aws_lambda_function.this.handler == "bootstrap" &&
      aws_lambda_function.this.reserved_concurrent_executions == 1
    )
    error_message = "provided.al2023, handler bootstrap, reserved concurrency."
  }

  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/lambda/t-gc" && aws_cloudwatch_log_group.this.retention_in_days == 365
    error_message = "The function has its log group with a retention."
  }

  assert {
    condition     = aws_scheduler_schedule.this.target[0].arn == aws_lambda_function.this.arn && aws_scheduler_schedule.this.target[0].role_arn == aws_iam_role.scheduler.arn
    error_message = "The schedule invokes the function with its own role."
  }

  assert {
    condition = (
      length(data.aws_iam_policy_document.scheduler.statement) == 1 &&
      data.aws_iam_policy_document.scheduler.statement[0].actions == toset(["lambda:InvokeFunction"]) &&
      data.aws_iam_policy_document.scheduler.statement[0].resources == toset([
        "arn:aws:lambda:us-east-1:111111111111:function:t-gc", "arn:aws:lambda:us-east-1:111111111111:function:t-gc:*",
      ])
    )
    error_message = "The scheduler role may invoke only this function."
  }

  assert {
    condition     = length(aws_lambda_function.this.vpc_config) == 0
    error_message = "Outside the VPC unless subnets are given."
  }
}

run "in_vpc_when_subnets_given" {
  command = plan

  variables {
    subnet_ids         = ["subnet-a"]
    security_group_ids = ["sg-lambda"]
  }

  assert {
    condition     = aws_lambda_function.this.vpc_config[0].security_group_ids == toset(["sg-lambda"]) && length(aws_iam_role_policy_attachment.vpc) == 1
    error_message = "In the VPC with the given SG and the VPC access policy."
  }
}
