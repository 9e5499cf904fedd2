package promote

import (
	"github.com/wikimedia/conveyor/activities/internal/helmkit"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// cluster is one production cluster's clients, built once (helmkit.Cluster: the
// kubeconfig, an in-memory discovery cache and REST mapper shared by every Helm
// action, and a typed client), and whether its nodes are simulated.
type cluster struct {
	*helmkit.Cluster
	simulated bool
}

func newCluster(c config.Cluster) (*cluster, error) {
	hc, err := helmkit.NewCluster(c.Name, c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return &cluster{Cluster: hc, simulated: c.Simulated}, nil
}
