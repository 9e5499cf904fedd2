// Package compose holds the files that the top-level docker-compose.yml mounts into its
// services (conveyor.yaml, the triggers file, the Temporal UI's, the registry's and
// buildkitd's configuration, and fake example secrets under secrets/), and the test
// that loads docker-compose.yml with compose-go, without a container engine, and
// checks it. The repository's top level is not a Go package, so the test lives here,
// beside the files it checks. docs/production.md explains the stack.
package compose
