// Package charts holds the Helm charts that conveyor deploys services with, and the tests
// that lint and render them with the Helm SDK.
//
// charts/service is the scaffold chart: one release per track (stable, canary) of an
// HTTP service, each with its own Deployment named <appName>-<track>, NetworkPolicy and
// optional HorizontalPodAutoscaler, and one Service named <appName> that selects the pods
// of every track. A canary release sets appName to the stable release's and
// service.enabled to false. Its `helm test` hook pod finds the Service through the
// <APPNAME>_SERVICE_HOST and <APPNAME>_SERVICE_PORT variables, so it needs no cluster DNS.
// values.schema.json documents and checks every value.
//
// charts/conveyor installs conveyor itself: a Deployment, PodDisruptionBudget,
// ServiceAccount and NetworkPolicy per worker pool, the Gerrit receiver, each
// component's conveyor.yaml in a ConfigMap with Secrets mounted as files, and the
// deploy pool's RBAC (docs/production.md). Its tests render and lint every value set
// under charts/conveyor/ci.
//
// ExtractService gives workers the scaffold chart embedded in their binary.
package charts
