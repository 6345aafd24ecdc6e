# Workspace host AMI: the ECS-optimized Amazon Linux 2023 AMI plus the files of ami/
# (Docker daemon.json with the host-wide seccomp profile, baseline ecs.config, the IMDS
# block unit, kernel hardening), installed by ami/scripts/harden.sh.
#
# Written for Debian's Packer 1.6.6, which bundles the amazon-ebs builder and does not know
# the `packer { required_plugins { ... } }` block (added in 1.7). With Packer >= 1.10 the
# Amazon plugin is no longer bundled: run `packer plugins install github.com/hashicorp/amazon`
# once before `packer build` (packer/README.md).

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region to build in (copy the AMI to other regions afterwards)."
}

variable "instance_type" {
  type        = string
  default     = "c6i.large"
  description = "Instance type of the temporary build instance."
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "x86_64 (c6i hosts) or arm64."
}

variable "ami_name_prefix" {
  type        = string
  default     = "workspace-host"
  description = "Prefix of the AMI name; a UTC timestamp is appended."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (empty: the default VPC)."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key encrypting the AMI's snapshot (empty: the account's default EBS key)."
}

variable "root_volume_size" {
  type        = number
  default     = 30
  description = "Root volume size of the AMI in GiB."
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "workspace_host" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id
  ssh_username  = "ec2-user"
  ami_name      = "${var.ami_name_prefix}-${var.architecture}-${local.timestamp}"

  ami_description = "ECS-optimized AL2023 + workspace host hardening (seccomp daemon default, IMDS block)"
  encrypt_boot    = true
  kms_key_id      = var.kms_key_id

  source_ami_filter {
    filters = {
      name                  = "al2023-ami-ecs-hvm-*-${var.architecture}"
      architecture          = var.architecture
      "virtualization-type" = "hvm"
      "root-device-type"    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    Name      = "${var.ami_name_prefix}-${var.architecture}"
    BaseAMI   = "{{ .SourceAMIName }}"
    BuiltWith = "packer/workspace-host.pkr.hcl"
  }
}

build {
  sources = ["source.amazon-ebs.workspace_host"]

  provisioner "shell" {
    inline = ["rm -rf /tmp/ami", "mkdir -p /tmp/ami"]
  }

  # The whole ami/ directory: harden.sh reads its files relative to itself.
  provisioner "file" {
    source      = "${path.root}/../ami/"
    destination = "/tmp/ami"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    inline = [
      "set -euo pipefail",
      "bash /tmp/ami/scripts/harden.sh /",
      # Fail the build if the result is not what the hosts rely on.
      "test -s /etc/docker/seccomp/workspace-seccomp.json",
      "grep -q '\"seccomp-profile\": \"/etc/docker/seccomp/workspace-seccomp.json\"' /etc/docker/daemon.json",
      "grep -qx 'ECS_AWSVPC_BLOCK_IMDS=true' /etc/ecs/ecs.config",
      "systemctl daemon-reload",
      "systemctl start workspace-imds-block.service",
      "systemctl restart docker",
      "docker info 2>/dev/null | grep -q /etc/docker/seccomp/workspace-seccomp.json",
      # The profile follows Docker's default of a given version (deployment/seccomp/derive.py,
      # SOURCE and MIN_DOCKER): record the AMI's Docker and refuse one older than 25.0.
      "v=$(docker version --format '{{.Server.Version}}'); echo \"workspace host Docker $v\"",
      "printf '%s\\n' \"$v\" 25.0 | sort -V -C -r || { echo \"Docker $v is older than the seccomp profile's 25.0 baseline\" >&2; exit 1; }",
      "grep -qx 'ECS_TASK_PIDS_LIMIT=1024' /etc/ecs/ecs.config",
      # A custom ECS AMI must not carry the build instance's agent state.
      "systemctl stop ecs || true",
      "rm -rf /var/lib/ecs/data/*",
      "rm -rf /tmp/ami",
      "dnf clean all",
    ]
  }
}
