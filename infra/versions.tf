terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.27 added logging_config (JSON logs) to aws_lambda_function.
      version = ">= 5.27"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = var.name_prefix
    }
  }
}
