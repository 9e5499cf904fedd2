"""Runs an OpenStack console script for conveyor's test rig (internal/devstack/openstack.go).

Usage: python3 launch.py NAME [ARGS...]

NAME is a console script of the installed packages (nova-api, glance-manage, ...):
Debian ships the entry points in the python3-* library packages but the scripts in the
service packages, which the rig does not install. For nova-compute the launcher first
adds a fake virt driver whose snapshot uploads a small blob to Glance: the stock fake
driver uploads nothing, so an image made with createImage would stay "queued" for ever.
Nova loads virt drivers only from its own nova.virt package, so the driver is
registered there, after the entry point's module has patched eventlet in.
"""
import importlib.metadata
import io
import sys
import types


def snapshot_fake_driver():
    from nova import exception
    from nova.compute import task_states
    from nova.image import glance
    from nova.virt import fake

    class SnapshotFakeDriver(fake.FakeDriver):
        """The fake driver, but snapshot stores data, so the image becomes active."""

        def snapshot(self, context, instance, image_id, update_task_state):
            if instance.uuid not in self.instances:
                raise exception.InstanceNotRunning(instance_id=instance.uuid)
            update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            meta = {
                'disk_format': 'raw',
                'container_format': 'bare',
                'properties': {
                    'image_location': 'snapshot',
                    'image_state': 'available',
                    'owner_id': instance.project_id,
                },
            }
            blob = ('conveyor fake snapshot of server %s\n'
                    % instance.uuid).encode()
            glance.API().update(context, image_id, meta, io.BytesIO(blob),
                                purge_props=False)

    import nova.virt
    module = types.ModuleType('nova.virt.conveyor_fake')
    module.SnapshotFakeDriver = SnapshotFakeDriver
    sys.modules[module.__name__] = module
    nova.virt.conveyor_fake = module


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    name = sys.argv[1]
    found = [ep for ep in importlib.metadata.entry_points(group='console_scripts')
             if ep.name == name]
    if not found:
        sys.exit('launch.py: no console script %r in the installed packages '
                 '(run `make deps`)' % name)
    func = found[0].load()
    if name == 'nova-compute':
        snapshot_fake_driver()
    if name == 'neutron-server':
        # Listing ports reads Port.port_forwardings, a relationship (a backref) that
        # only the port forwarding model defines, and only once SQLAlchemy configured
        # the mappers; without service plugins nothing does either, and every GET
        # /v2.0/ports (which nova makes for each server) answers 500. So: import all
        # of neutron's models, as neutron-db-manage does, and configure them.
        import neutron.db.migration.models.head  # noqa: F401
        import sqlalchemy.orm
        sqlalchemy.orm.configure_mappers()
    sys.argv = sys.argv[1:]
    sys.exit(func())


if __name__ == '__main__':
    main()
