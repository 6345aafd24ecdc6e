mock_provider "aws" {}

variables {
  region = "us-east-1"
}

run "trunking_enabled_and_published" {
  command = apply

  assert {
    condition     = aws_ecs_account_setting_default.this["awsvpcTrunking"].value == "enabled"
    error_message = "The account default awsvpcTrunking must be enabled."
  }

  assert {
    condition = (
      aws_ssm_parameter.ecs_setting["awsvpcTrunking"].name == "/workspaces/account-baseline/ecs/awsvpcTrunking" &&
      aws_ssm_parameter.ecs_setting["awsvpcTrunking"].insecure_value == aws_ecs_account_setting_default.this["awsvpcTrunking"].value
    )
    error_message = "The environments read the applied value from the published parameter."
  }
}

run "unmanaged_settings_are_not_claimed" {
  command = apply

  variables {
    manage_ecs_account_settings = false
  }

  assert {
    condition     = length(aws_ecs_account_setting_default.this) == 0 && output.ecs_settings["awsvpcTrunking"] == "unmanaged"
    error_message = "Without the API the baseline must publish \"unmanaged\", never \"enabled\"."
  }
}
