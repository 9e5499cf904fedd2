package devstack

import (
	"context"
	"time"

	"github.com/wikimedia/conveyor/internal/dev/devstack/openstack"
	"github.com/wikimedia/conveyor/internal/lib/config"
)

// OpenStackFlavor and OpenStackImage exist in every region of the OpenStack rig
// (`conveyor dev up --with openstack`, package devstack/openstack).
const (
	OpenStackFlavor = openstack.Flavor
	OpenStackImage  = openstack.Image
)

// openstack is the stack's OpenStack rig.
func (s *stack) openstack() *openstack.Rig {
	return openstack.New(openstack.Stack{Dir: s.dir, Secret: s.secret, Say: s.say})
}

func openstackComponent() component {
	return component{
		name:     "openstack",
		optional: true,
		address:  func(*stack) string { return openstack.Address() },
		timeout:  2 * time.Minute,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			return nil, s.openstack().Up(ctx)
		},
		ready:      func(ctx context.Context, s *stack) error { return s.openstack().Ready(ctx) },
		beforeStop: func(_ context.Context, s *stack) error { return s.openstack().Down() },
	}
}

// openstackWanted says whether the rig is part of this stack: asked for now, or
// brought up before (its state directory exists).
func (s *stack) openstackWanted() bool {
	for _, c := range s.components() {
		if c.name == "openstack" && s.wanted(c) {
			return true
		}
	}
	return s.openstack().Started()
}

// openstackConfig is what the configuration file says about the rig.
func (s *stack) openstackConfig() config.OpenStack { return s.openstack().Config() }
