import { templateOf } from './fixtures';
test('synth', () => {
  const t = templateOf();
  console.log(Object.keys(t.toJSON().Resources).length);
  console.log(Object.entries(t.toJSON().Resources).filter(([k]) => k.startsWith('Api')).map(([k, v]) => `${k} ${(v as {Type: string}).Type}`).join('\n'));
});
