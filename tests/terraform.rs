//! Reading `infra/`'s Terraform without `terraform`: the HCL parsed with
//! hcl-rs, blocks and attributes found by name, and IAM policy documents
//! rendered to the JSON that AWS would receive, with the resources'
//! ARNs filled in. The infra agreement tests and the IAM end-to-end tests
//! read the same files through this module, so what the tests run under is
//! what `terraform apply` deploys.

use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Expression};
use serde_json::{Value, json};

/// The `infra/` folder.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

/// Every `.tf` file of `infra/`, parsed, as one body.
pub fn terraform() -> Body {
    let mut files: Vec<PathBuf> = std::fs::read_dir(infra_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "infra/ has only {files:?}");
    let mut all = Body::builder();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let body =
            hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        all = all.add_blocks(body.into_blocks());
    }
    all.build()
}

/// The block `kind "label0" "label1"` (e.g. resource, type, name).
pub fn block<'a>(tf: &'a Body, kind: &str, labels: &[&str]) -> &'a Block {
    tf.blocks()
        .find(|b| {
            b.identifier() == kind
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(labels.iter().copied())
        })
        .unwrap_or_else(|| panic!("no {kind} {labels:?} in infra/"))
}

pub fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

/// An attribute as HCL source text (strings keep their quotes).
pub fn text(body: &Body, key: &str) -> String {
    attr(body, key).to_string()
}

/// A local value, from whichever `locals` block defines it.
pub fn local<'a>(tf: &'a Body, name: &str) -> &'a Expression {
    tf.blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == name)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no local {name}"))
}

pub fn nested<'a>(body: &'a Body, kind: &str) -> &'a Body {
    body.blocks()
        .find(|b| b.identifier() == kind)
        .map(|b| b.body())
        .unwrap_or_else(|| panic!("no {kind} block"))
}

/// The ARNs Terraform would know after `apply`, for rendering policies.
pub struct Arns {
    /// `arn:aws:s3:::<bucket>`.
    pub bucket: String,
    pub tiles_queue: String,
    pub tiles_dlq: String,
    pub stitch_queue: String,
    pub stitch_dlq: String,
    pub explore_queue: String,
    pub explore_dlq: String,
}

impl Arns {
    fn context(&self) -> Context<'static> {
        let queue = |arn: &str| json!({ "arn": arn });
        let log_group = |name: &str| json!({ "arn": format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{name}") });
        let resources = json!({
            "aws_s3_bucket": { "jobs": { "arn": self.bucket } },
            "aws_sqs_queue": {
                "tiles": queue(&self.tiles_queue),
                "tiles_dlq": queue(&self.tiles_dlq),
                "stitch": queue(&self.stitch_queue),
                "stitch_dlq": queue(&self.stitch_dlq),
                "explore": queue(&self.explore_queue),
                "explore_dlq": queue(&self.explore_dlq),
            },
            "aws_cloudwatch_log_group": {
                "function": { "worker": log_group("worker"), "stitch": log_group("stitch") }
            },
        });
        let mut ctx = Context::new();
        for (name, value) in resources.as_object().unwrap() {
            ctx.declare_var(name.as_str(), hcl::to_value(value).unwrap());
        }
        ctx
    }
}

/// The JSON policy document that `data "aws_iam_policy_document" "<name>"`
/// renders to, with `arns` for the resources it names. Each statement
/// keeps its `Sid`, so a test can drop one by name.
pub fn policy_document(tf: &Body, name: &str, arns: &Arns) -> Value {
    let mut ctx = arns.context();
    // The locals a policy may use (those that evaluate with what we know).
    let mut locals = hcl::Map::new();
    for attr in tf
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
    {
        if let Ok(value) = attr.expr().evaluate(&ctx) {
            locals.insert(attr.key().to_string(), value);
        }
    }
    ctx.declare_var("local", hcl::Value::Object(locals));
    let eval = |expr: &Expression| -> Value {
        let value = expr
            .evaluate(&ctx)
            .unwrap_or_else(|e| panic!("policy {name}: cannot evaluate {expr}: {e}"));
        serde_json::to_value(value).unwrap()
    };
    let doc = block(tf, "data", &["aws_iam_policy_document", name]).body();
    let statements: Vec<Value> = doc
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .map(|statement| {
            let s = statement.body();
            let mut out = serde_json::Map::new();
            if let Some(sid) = s.attributes().find(|a| a.key() == "sid") {
                out.insert("Sid".into(), eval(sid.expr()));
            }
            let effect = s
                .attributes()
                .find(|a| a.key() == "effect")
                .map_or(json!("Allow"), |a| eval(a.expr()));
            out.insert("Effect".into(), effect);
            out.insert("Action".into(), eval(attr(s, "actions")));
            out.insert("Resource".into(), eval(attr(s, "resources")));
            // The emulators that enforce IAM here ignore conditions, so a
            // policy that needs one would be tested more leniently than AWS
            // applies it: refuse it rather than pass it through.
            assert!(
                s.blocks().all(|b| b.identifier() != "condition"),
                "policy {name}: conditions are not supported by the IAM tests"
            );
            Value::Object(out)
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}
