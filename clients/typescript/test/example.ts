// Compiled (not run) by types.test.js: the declarations of index.js and the generated
// stubs type-check together under strict TypeScript.
import { Code, ConnectError, connect, errorInfo, watch } from '../index.js';
import type { Instance } from '../gen/deltacloud/v1/instance_pb.js';
import { InstanceState } from '../gen/deltacloud/v1/common_pb.js';

export async function running(target: string): Promise<Instance[]> {
  const dc = connect(target, { username: 'mockuser', password: 'mockpassword', driver: 'mock' });
  try {
    const { instances } = await dc.instances.listInstances({ pageSize: 10, state: InstanceState.RUNNING });
    return instances.filter((i) => i.state === InstanceState.RUNNING);
  } catch (error) {
    if (ConnectError.from(error).code === Code.Unauthenticated) {
      const reason: string | undefined = errorInfo(error)?.reason;
      throw new Error(`refused: ${reason ?? '?'}`);
    }
    throw error;
  }
}

export async function firstEvent(target: string): Promise<string> {
  const dc = connect(target, { username: 'mockuser', password: 'mockpassword' });
  const events = watch((request, options) => dc.instances.watchInstanceEvents(request, options), {
    initialSnapshot: true,
  });
  for await (const event of events) {
    const { afterRevision, journalId } = events.position();
    return `${event.instanceId} ${afterRevision ?? ''} ${journalId ?? ''}`;
  }
  return '';
}
