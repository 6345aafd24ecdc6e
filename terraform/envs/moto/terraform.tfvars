# The moto test environment: the production composition against moto_server, small sizes,
# disposable, with the features moto cannot emulate faithfully switched off.
name       = "ws-moto"
region     = "us-east-1"
vpc_cidr   = "10.40.0.0/16"
disposable = true

enable_dns_firewall            = false # moto has no Route 53 Resolver DNS Firewall API
require_awsvpc_trunking        = false # moto lacks ecs:PutAccountSettingDefault: the baseline publishes "unmanaged"
enable_service_autoscaling     = false # moto lacks application-autoscaling:ListTagsForResource
enable_redis_replication_group = false # moto's replication groups lose member clusters and settings on read
enable_resolver_query_logging  = false # moto lacks route53resolver:ListTagsForResource for query log configs
signer_force_destroy           = false # moto lacks iam:ListServiceSpecificCredentials (run.sh deletes the key first)

ami_id = "ami-0123456789abcdef0" # any id: moto does not validate AMIs

instance_type       = "c6i.xlarge"
asg_min_size        = 2
asg_max_size        = 4
warm_pool_min_size  = 1
workspaces_per_host = 3

control_plane_min_count = 2
control_plane_max_count = 4

redis_node_type          = "cache.t3.micro"
redis_num_cache_clusters = 2
redis_multi_az           = true

bucket_name = "ws-moto-workspaces"
images = {
  agent             = "123456789012.dkr.ecr.us-east-1.amazonaws.com/workspaces/workspace@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  proxy             = "123456789012.dkr.ecr.us-east-1.amazonaws.com/workspaces/proxy-sidecar@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  control_plane     = "123456789012.dkr.ecr.us-east-1.amazonaws.com/workspaces/control-plane@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  metrics_collector = "123456789012.dkr.ecr.us-east-1.amazonaws.com/workspaces/metrics-collector@sha256:0000000000000000000000000000000000000000000000000000000000000000"
}
certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
bedrock_model_arns = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"]

alb_ingress_cidr_blocks = ["10.1.0.0/16"]

allowed_domains = [
  "pypi.org",
  "files.pythonhosted.org",
  "registry.npmjs.org",
]
