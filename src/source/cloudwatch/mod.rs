//! The live source: polls CloudWatch Logs (FilterLogEvents) for every configured
//! log group and counts each event exactly once.
